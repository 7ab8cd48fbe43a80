import { requiredString, type Env } from '../config.js';
import { readDiscoveryFunctionConfig, type DiscoveryFunctionConfig } from '../discovery/discovery-config.js';

export interface PowerFunctionConfig extends DiscoveryFunctionConfig {
  /** The stack's host-signals SSM document: the only command the function may send (lib/host-signals-document.ts). */
  readonly signalsDocument: string;
}

/** Discovery's TABLE_NAME and TAG_PREFIX (the same tags, read the same way), and SIGNALS_DOCUMENT (required). */
export function readPowerFunctionConfig(env: Env): PowerFunctionConfig {
  return { ...readDiscoveryFunctionConfig(env), signalsDocument: requiredString(env, 'SIGNALS_DOCUMENT') };
}
