/** A configuration problem found at start-up; the message says what to set and how. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
