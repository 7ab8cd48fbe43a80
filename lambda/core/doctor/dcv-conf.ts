/**
 * A tolerant reader for a DCV server's /etc/dcv/dcv.conf (INI-like): `[section]` lines, `key=value` with
 * optional double or single quotes, `#` and `;` comment lines, CRLF and a byte-order mark. Lines it does not
 * understand are collected, not fatal: the doctor reports them and checks the rest.
 */

export interface DcvSetting {
  readonly value: string;
  /** 1-based line number. */
  readonly line: number;
}

export interface DcvConf {
  /** Section name (lower case) → key (lower case) → setting; the last of repeated keys wins, as in DCV. */
  readonly sections: ReadonlyMap<string, ReadonlyMap<string, DcvSetting>>;
  readonly unparsed: readonly { readonly line: number; readonly text: string }[];
}

function unquote(raw: string): string {
  const quote = raw[0];
  if ((quote === '"' || quote === "'") && raw.length >= 2) {
    const end = raw.indexOf(quote, 1);
    // Anything after the closing quote (a trailing comment) is ignored.
    if (end !== -1) return raw.slice(1, end);
  }
  return raw;
}

export function parseDcvConf(text: string): DcvConf {
  const sections = new Map<string, Map<string, DcvSetting>>();
  const unparsed: { line: number; text: string }[] = [];
  let current: Map<string, DcvSetting> | undefined;
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((rawLine, index) => {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const section = /^\[([^\]]+)\]\s*(?:[#;].*)?$/.exec(line);
    if (section) {
      const name = section[1]!.trim().toLowerCase();
      current = sections.get(name) ?? new Map();
      sections.set(name, current);
      return;
    }
    const setting = /^([A-Za-z0-9_.\-/]+)\s*=\s*(.*)$/.exec(line);
    if (setting && current) {
      current.set(setting[1]!.toLowerCase(), { value: unquote(setting[2]!.trim()), line: index + 1 });
      return;
    }
    unparsed.push({ line: index + 1, text: rawLine.length > 80 ? `${rawLine.slice(0, 80)}…` : rawLine });
  });
  return { sections, unparsed };
}

export function setting(conf: DcvConf, section: string, key: string): DcvSetting | undefined {
  return conf.sections.get(section)?.get(key);
}

/** Every section holding `key`, for a setting written under the wrong section. */
export function sectionsWith(conf: DcvConf, key: string): string[] {
  return [...conf.sections].filter(([, keys]) => keys.has(key)).map(([name]) => name);
}
