// A logger for tests: silent unless AUTOPILOT_TEST_LOG_LEVEL is set (e.g. to debug a failing test).
import { createLogger, type Logger } from '../../src/log.ts';

export function testLogger(): Logger {
  return createLogger(process.env.AUTOPILOT_TEST_LOG_LEVEL ?? 'silent', 'test');
}
