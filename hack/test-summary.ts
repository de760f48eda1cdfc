// Prints the closing line CI reads, "N passed, N failed[, N skipped]", from vitest's JSON report.
// A missing or empty report (the run never reached vitest) counts as one failure.
import { readFileSync } from 'node:fs';

interface Report {
  numTotalTests?: number;
  numPassedTests?: number;
  numFailedTests?: number;
  numPendingTests?: number;
  numTodoTests?: number;
}

let r: Report = {};
try {
  r = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as Report;
} catch {
  // no report
}
const passed = r.numPassedTests ?? 0;
const failed = (r.numFailedTests ?? 0) + (r.numTotalTests ? 0 : 1);
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
process.stdout.write(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
