import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lambda/core/config-errors';
import { readPowerFunctionConfig } from '../../lambda/power/power-config';

const base = { TABLE_NAME: 'sessions', SIGNALS_DOCUMENT: 'Stack-HostSignals-AbC123' };

describe('readPowerFunctionConfig', () => {
  it('reads the table, the signals document, and defaults the tag prefix to dcv:', () => {
    expect(readPowerFunctionConfig(base)).toEqual({ tableName: 'sessions', signalsDocument: 'Stack-HostSignals-AbC123', tagPrefix: 'dcv:' });
    expect(readPowerFunctionConfig({ ...base, TAG_PREFIX: '' }).tagPrefix).toBe('dcv:');
  });

  it('keeps a custom prefix literally (a trailing space is part of it)', () => {
    expect(readPowerFunctionConfig({ ...base, TAG_PREFIX: 'lab ' }).tagPrefix).toBe('lab ');
  });

  it.each([
    [{ SIGNALS_DOCUMENT: 'doc' }, /TABLE_NAME is required/],
    [{ TABLE_NAME: 't' }, /SIGNALS_DOCUMENT is required/],
    [{ TABLE_NAME: 't', SIGNALS_DOCUMENT: '   ' }, /SIGNALS_DOCUMENT is required/],
    [{ ...base, TAG_PREFIX: 'aws:x' }, /^TAG_PREFIX: .*reserved/],
    [{ ...base, TAG_PREFIX: 'bad*prefix' }, /^TAG_PREFIX: .*may contain only/],
  ])('refuses %j with a ConfigError naming the variable', (env, message) => {
    expect(() => readPowerFunctionConfig(env)).toThrow(ConfigError);
    expect(() => readPowerFunctionConfig(env)).toThrow(message);
  });
});
