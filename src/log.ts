// Structured logging: one pino root logger; callers make a child per request or reconcile with its context.
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, name = 'helmrelease-autopilot'): Logger {
  return pino({
    name,
    level,
    base: { name },
    // Never log Secret data: these paths are removed wherever they appear.
    redact: {
      paths: ['data', 'stringData', 'binaryData', '*.data', '*.stringData', '*.binaryData'],
      remove: true,
    },
  });
}
