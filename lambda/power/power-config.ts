import { requiredString, type Env } from '../config.js';
import { ConfigError } from '../core/config-errors.js';
import { DEFAULT_TAG_PREFIX, validateTagPrefix } from '../core/discovery/tag-parser.js';

export interface PowerFunctionConfig {
  readonly tableName: string;
  readonly tagPrefix: string;
  /** The stack's host-signals SSM document: the only command the function may send (lib/host-signals-document.ts). */
  readonly signalsDocument: string;
}

/** TABLE_NAME and SIGNALS_DOCUMENT (required), TAG_PREFIX (default `dcv:`), validated once at cold start. */
export function readPowerFunctionConfig(env: Env): PowerFunctionConfig {
  const tableName = requiredString(env, 'TABLE_NAME');
  const signalsDocument = requiredString(env, 'SIGNALS_DOCUMENT');
  // Not trimmed, as in discovery: tags are matched literally, so a prefix may end in a space.
  const prefix = env.TAG_PREFIX === undefined || env.TAG_PREFIX === '' ? DEFAULT_TAG_PREFIX : env.TAG_PREFIX;
  try {
    return { tableName, tagPrefix: validateTagPrefix(prefix), signalsDocument };
  } catch (error) {
    throw new ConfigError(`TAG_PREFIX: ${(error as Error).message}`);
  }
}
