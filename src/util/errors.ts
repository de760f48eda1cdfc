// One way to turn anything thrown into a message for a log line, an event or an error: `{ err: errorMessage(e) }`.

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
