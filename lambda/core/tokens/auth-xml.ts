/**
 * The DCV server's external-authenticator answer (contract section 2): always 200 text/xml for a
 * decision, `<auth result="yes"><username>…</username></auth>` or `<auth result="no"><message>…</message></auth>`.
 */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => XML_ENTITIES[c]!).replace(XML_INVALID, '\uFFFD');
}

const XML_ENTITIES: Record<string, string> = { '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' };

// Characters XML 1.0 forbids even escaped (C0 controls but tab/newline/CR, lone surrogates, U+FFFE/U+FFFF).
// eslint-disable-next-line no-control-regex
const XML_INVALID = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

export function authYesXml(user: string): string {
  return `<auth result="yes"><username>${escapeXml(user)}</username></auth>`;
}

export function authNoXml(message: string): string {
  return `<auth result="no"><message>${escapeXml(message)}</message></auth>`;
}
