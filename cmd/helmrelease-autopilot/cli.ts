#!/usr/bin/env node
// The helmrelease-autopilot command (package.json "bin", so `npx helmrelease-autopilot ...` in this repository;
// hack/kubectl-autopilot makes it a kubectl plugin): `explain ...` explains releases; anything else runs the
// operator with those flags, as main.ts does.
const [command, ...rest] = process.argv.slice(2);
if (command === 'explain') {
  const { main } = await import('./explain/main.ts');
  process.exitCode = await main(rest, process.env);
} else {
  await import('./main.ts');
}
