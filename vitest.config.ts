import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: [
            'cmd/**/*.test.ts',
            'src/**/*.test.ts',
            'webhook/**/*.test.ts',
            'controller/**/*.test.ts',
            'hack/**/*.test.ts',
            'test/unit/**/*.test.ts',
          ],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          // Builds helm-controller (once per version, cached outside the repository) before any spec.
          globalSetup: ['test/e2e/support/global-setup.ts'],
          // Each spec file runs its own control plane, helm-controller and operator: one at a time, after
          // the other projects, so the real timeouts are not starved on a 2-core machine.
          fileParallelism: false,
          sequence: { groupOrder: 1 },
          testTimeout: 300_000,
          hookTimeout: 900_000,
        },
      },
    ],
  },
});
