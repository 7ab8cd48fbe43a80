import { requiredString, type Env } from '../config.js';
import { ConfigError } from '../core/config-errors.js';
import { DEFAULT_TAG_PREFIX, validateTagPrefix } from '../core/discovery/tag-parser.js';

export interface DiscoveryFunctionConfig {
  readonly tableName: string;
  readonly tagPrefix: string;
}

/** TABLE_NAME (required) and TAG_PREFIX (default `dcv:`), validated once at cold start. */
export function readDiscoveryFunctionConfig(env: Env): DiscoveryFunctionConfig {
  const tableName = requiredString(env, 'TABLE_NAME');
  // Not trimmed: a prefix may legitimately end in a space, and tags are matched literally.
  const prefix = env.TAG_PREFIX === undefined || env.TAG_PREFIX === '' ? DEFAULT_TAG_PREFIX : env.TAG_PREFIX;
  try {
    return { tableName, tagPrefix: validateTagPrefix(prefix) };
  } catch (error) {
    throw new ConfigError(`TAG_PREFIX: ${(error as Error).message}`);
  }
}

