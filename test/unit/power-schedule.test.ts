import { describe, expect, it } from 'vitest';
import { inWindow, isIanaZone, parseSchedule, windowStartsBetween } from '../../lambda/core/power/schedule';

function windows(text: string) {
  const parsed = parseSchedule(text);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.schedule.windows.map((w) => ({ days: [...w.days].sort(), start: w.start, end: w.end, zone: w.zone }));
}

describe('parseSchedule: the accepted forms', () => {
  it.each([
    ['Mon-Fri 08:00-19:00 Europe/Paris', [{ days: [1, 2, 3, 4, 5], start: 480, end: 1140, zone: 'Europe/Paris' }]],
    ['Sun 00:00-24:00 UTC', [{ days: [0], start: 0, end: 1440, zone: 'UTC' }]],
    ['Fri-Mon 09:30-10:00 America/New_York', [{ days: [0, 1, 5, 6], start: 570, end: 600, zone: 'America/New_York' }]],
    ['Mon,Wed,Sat-Sun 22:00-06:00 Asia/Tokyo', [{ days: [0, 1, 3, 6], start: 1320, end: 360, zone: 'Asia/Tokyo' }]],
    ['mon-FRI  07:00-08:00   Europe/Berlin', [{ days: [1, 2, 3, 4, 5], start: 420, end: 480, zone: 'Europe/Berlin' }]],
    [
      'Mon-Fri 08:00-19:00 Europe/Paris ; Sat 10:00-12:00 America/New_York',
      [
        { days: [1, 2, 3, 4, 5], start: 480, end: 1140, zone: 'Europe/Paris' },
        { days: [6], start: 600, end: 720, zone: 'America/New_York' },
      ],
    ],
  ])('%s', (text, expected) => expect(windows(text)).toEqual(expected));
});

describe('parseSchedule: every refusal quotes the window and says what is expected', () => {
  it.each([
    ['', "'' must be DAYS HH:MM-HH:MM ZONE"],
    ['Mon-Fri 08:00-19:00', "'Mon-Fri 08:00-19:00' must be DAYS HH:MM-HH:MM ZONE"],
    ['Mon-Fri 08:00-19:00 Europe/Paris extra', 'must be DAYS HH:MM-HH:MM ZONE'],
    ['Monday 08:00-19:00 UTC', "'Monday' is not a day"],
    ['Mon-Mon 08:00-19:00 UTC', "the range 'Mon-Mon' starts and ends on the same day; write 'Mon'"],
    ['Mon-Wed-Fri 08:00-19:00 UTC', "'Mon-Wed-Fri' must be days"],
    ['Mon, 08:00-19:00 UTC', "'Mon,' must be days such as Mon-Fri or Mon,Wed,Sat-Sun"],
    ['Mon,,Tue 08:00-19:00 UTC', "'Mon,,Tue' must be days"],
    ['Mon 08:00 UTC', "'08:00' must be HH:MM-HH:MM"],
    ['Mon 24:00-08:00 UTC', "'24:00' is not a time HH:MM (00:00–23:59)"],
    ['Mon 08:00-24:01 UTC', "'24:01' is not a time HH:MM (00:00–23:59, or 24:00 as an end)"],
    ['Mon 08:60-09:00 UTC', "'08:60' is not a time"],
    ['Mon 8:00-09:00 UTC', "'8:00' is not a time"],
    ['Mon 08:00-08:00 UTC', 'starts and ends at 08:00 (for a whole day write 00:00-24:00)'],
    ['Mon 08:00-09:00 Mars/Olympus', "'Mars/Olympus' is not an IANA time zone"],
    ['Mon 08:00-09:00 +01:00', "'+01:00' is not an IANA time zone"],
    ['Mon 08:00-09:00 CET;', "'' must be DAYS"],
    [Array.from({ length: 17 }, () => 'Mon 08:00-09:00 UTC').join(';'), 'has 17 windows; at most 16'],
  ])('%j', (text, reason) => {
    const parsed = parseSchedule(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toContain(reason);
  });

  it('isIanaZone: names Intl knows, never offsets', () => {
    for (const zone of ['UTC', 'Europe/Paris', 'America/Argentina/Buenos_Aires', 'Etc/GMT+5']) expect(isIanaZone(zone)).toBe(true);
    for (const zone of ['+01:00', 'Europe/Nowhere', '', 'Europe/', '/Paris']) expect(isIanaZone(zone)).toBe(false);
  });
});

function schedule(text: string) {
  const parsed = parseSchedule(text);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.schedule;
}
const at = (iso: string) => Date.parse(iso);

// Daylight-saving changes in 2026 (IANA tzdata):
// Europe/Paris: Sun 29 Mar 01:00Z (02:00 CET → 03:00 CEST); Sun 25 Oct 01:00Z (03:00 CEST → 02:00 CET).
// America/New_York: Sun 8 Mar 07:00Z (02:00 EST → 03:00 EDT); Sun 1 Nov 06:00Z (02:00 EDT → 01:00 EST).
describe('inWindow: instants in and out, across daylight-saving changes', () => {
  it.each([
    // An ordinary working week, on either side of the spring change.
    ['Mon-Fri 08:00-19:00 Europe/Paris', '2026-03-27T06:59:59Z', false], // Fri 07:59:59 CET
    ['Mon-Fri 08:00-19:00 Europe/Paris', '2026-03-27T07:00:00Z', true], // Fri 08:00 CET
    ['Mon-Fri 08:00-19:00 Europe/Paris', '2026-03-27T17:59:59Z', true],
    ['Mon-Fri 08:00-19:00 Europe/Paris', '2026-03-27T18:00:00Z', false], // end is exclusive
    ['Mon-Fri 08:00-19:00 Europe/Paris', '2026-03-28T10:00:00Z', false], // Saturday
    ['Mon-Fri 08:00-19:00 Europe/Paris', '2026-03-30T06:00:00Z', true], // Mon 08:00 CEST
    ['Mon-Fri 08:00-19:00 Europe/Paris', '2026-03-30T05:59:59Z', false],
    // Spring forward, Paris: 02:30 does not exist on 29 March; the window opens when the clock reaches 03:00.
    ['Sun 02:30-05:00 Europe/Paris', '2026-03-29T00:59:59Z', false], // 01:59:59 CET
    ['Sun 02:30-05:00 Europe/Paris', '2026-03-29T01:00:00Z', true], // 03:00 CEST
    ['Sun 02:30-05:00 Europe/Paris', '2026-03-29T02:59:59Z', true],
    ['Sun 02:30-05:00 Europe/Paris', '2026-03-29T03:00:00Z', false], // 05:00 CEST
    ['Sun 02:30-05:00 Europe/Paris', '2026-04-05T00:30:00Z', true], // next Sunday: 02:30 CEST exists
    ['Sun 02:30-05:00 Europe/Paris', '2026-04-05T00:29:59Z', false],
    // Fall back, Paris: 02:30 happens twice on 25 October; the window starts at the first.
    ['Sun 02:30-04:00 Europe/Paris', '2026-10-25T00:29:59Z', false],
    ['Sun 02:30-04:00 Europe/Paris', '2026-10-25T00:30:00Z', true], // 02:30 CEST
    ['Sun 02:30-04:00 Europe/Paris', '2026-10-25T01:15:00Z', true], // 02:15 CET, the repeated hour: still inside
    ['Sun 02:30-04:00 Europe/Paris', '2026-10-25T02:59:59Z', true],
    ['Sun 02:30-04:00 Europe/Paris', '2026-10-25T03:00:00Z', false], // 04:00 CET
    // …and a window ending in the repeated hour ends at its second 02:30: it never closes and reopens.
    ['Sun 01:00-02:30 Europe/Paris', '2026-10-24T22:59:59Z', false],
    ['Sun 01:00-02:30 Europe/Paris', '2026-10-24T23:00:00Z', true], // 01:00 CEST
    ['Sun 01:00-02:30 Europe/Paris', '2026-10-25T00:45:00Z', true], // 02:45 CEST: past 02:30 on the wall, still inside
    ['Sun 01:00-02:30 Europe/Paris', '2026-10-25T01:29:59Z', true], // 02:29:59 CET
    ['Sun 01:00-02:30 Europe/Paris', '2026-10-25T01:30:00Z', false], // 02:30 CET
    // Spring forward, New York.
    ['Sun 02:30-03:30 America/New_York', '2026-03-08T06:59:59Z', false], // 01:59:59 EST
    ['Sun 02:30-03:30 America/New_York', '2026-03-08T07:00:00Z', true], // 03:00 EDT
    ['Sun 02:30-03:30 America/New_York', '2026-03-08T07:30:00Z', false], // 03:30 EDT
    // A window wholly inside the gap does not happen that day, and does the next week.
    ['Sun 02:00-02:59 America/New_York', '2026-03-08T07:00:00Z', false],
    ['Sun 02:00-02:59 America/New_York', '2026-03-08T06:30:00Z', false],
    ['Sun 02:00-02:59 America/New_York', '2026-03-15T06:00:00Z', true], // 02:00 EDT
    // Fall back, New York: 01:30–01:45 twice; the window spans from the first 01:30 to the second 01:45.
    ['Sun 01:30-01:45 America/New_York', '2026-11-01T05:29:59Z', false],
    ['Sun 01:30-01:45 America/New_York', '2026-11-01T05:30:00Z', true], // 01:30 EDT
    ['Sun 01:30-01:45 America/New_York', '2026-11-01T06:00:00Z', true], // 01:00 EST
    ['Sun 01:30-01:45 America/New_York', '2026-11-01T06:44:59Z', true], // 01:44:59 EST
    ['Sun 01:30-01:45 America/New_York', '2026-11-01T06:45:00Z', false],
    // Overnight windows: start on the listed day, end the next; across the spring change they are an hour shorter.
    ['Sat 22:00-06:00 America/New_York', '2026-03-08T02:59:59Z', false], // Sat 21:59:59 EST
    ['Sat 22:00-06:00 America/New_York', '2026-03-08T03:00:00Z', true], // Sat 22:00 EST
    ['Sat 22:00-06:00 America/New_York', '2026-03-08T09:59:59Z', true], // Sun 05:59:59 EDT
    ['Sat 22:00-06:00 America/New_York', '2026-03-08T10:00:00Z', false], // Sun 06:00 EDT
    ['Mon-Fri 22:00-06:00 Europe/Paris', '2026-03-28T04:59:59Z', true], // Sat 05:59:59 CET, from Friday
    ['Mon-Fri 22:00-06:00 Europe/Paris', '2026-03-29T04:00:00Z', false], // Sun 06:00 CEST: no Saturday window
    // Day ranges that wrap, a whole day, a zone far from UTC.
    ['Fri-Mon 09:00-10:00 UTC', '2026-03-07T09:30:00Z', true], // Saturday
    ['Fri-Mon 09:00-10:00 UTC', '2026-03-09T09:30:00Z', true], // Monday
    ['Fri-Mon 09:00-10:00 UTC', '2026-03-10T09:30:00Z', false], // Tuesday
    ['Sat 00:00-24:00 UTC', '2026-03-07T00:00:00Z', true],
    ['Sat 00:00-24:00 UTC', '2026-03-07T23:59:59Z', true],
    ['Sat 00:00-24:00 UTC', '2026-03-08T00:00:00Z', false],
    ['Mon 08:00-09:00 Asia/Tokyo', '2026-03-08T23:30:00Z', true], // Monday 08:30 in Tokyo, Sunday in UTC
    ['Mon 08:00-09:00 Asia/Tokyo', '2026-03-09T23:30:00Z', false], // Tuesday in Tokyo
    // Several windows in several zones: the union.
    ['Mon 08:00-09:00 Europe/Paris; Mon 08:00-09:00 America/New_York', '2026-03-09T07:30:00Z', true],
    ['Mon 08:00-09:00 Europe/Paris; Mon 08:00-09:00 America/New_York', '2026-03-09T12:30:00Z', true],
    ['Mon 08:00-09:00 Europe/Paris; Mon 08:00-09:00 America/New_York', '2026-03-09T10:00:00Z', false],
  ])('%s at %s → %s', (text, iso, expected) => {
    expect(inWindow(schedule(text), at(iso))).toBe(expected);
  });
});

describe('windowStartsBetween: each start once, in (from, to]', () => {
  const iso = (starts: number[]) => starts.map((t) => new Date(t).toISOString());

  it.each([
    ['Mon-Fri 08:00-19:00 Europe/Paris', '2026-03-27T18:00:00Z', '2026-03-30T06:00:00Z', ['2026-03-30T06:00:00.000Z']],
    ['Mon-Fri 08:00-19:00 Europe/Paris', '2026-03-27T18:00:00Z', '2026-03-30T05:59:59Z', []],
    ['Mon-Fri 08:00-19:00 Europe/Paris', '2026-03-30T06:00:00Z', '2026-03-30T07:00:00Z', []], // from is exclusive
    [
      'Mon-Fri 08:00-19:00 Europe/Paris',
      '2026-03-26T00:00:00Z',
      '2026-03-31T00:00:00Z',
      ['2026-03-26T07:00:00.000Z', '2026-03-27T07:00:00.000Z', '2026-03-30T06:00:00.000Z'],
    ],
    ['Sun 02:30-05:00 Europe/Paris', '2026-03-29T00:00:00Z', '2026-03-29T02:00:00Z', ['2026-03-29T01:00:00.000Z']],
    ['Sun 02:30-04:00 Europe/Paris', '2026-10-24T22:00:00Z', '2026-10-25T04:00:00Z', ['2026-10-25T00:30:00.000Z']], // once, not at the second 02:30
    ['Sun 02:00-02:59 America/New_York', '2026-03-08T00:00:00Z', '2026-03-08T12:00:00Z', []],
    ['Sun 01:30-01:45 America/New_York', '2026-11-01T00:00:00Z', '2026-11-01T12:00:00Z', ['2026-11-01T05:30:00.000Z']],
    ['Sat 22:00-06:00 America/New_York', '2026-03-07T00:00:00Z', '2026-03-09T00:00:00Z', ['2026-03-08T03:00:00.000Z']],
    [
      'Mon 08:00-09:00 Europe/Paris; Mon 08:00-09:00 America/New_York; Mon 07:00-08:00 Europe/London',
      '2026-03-09T00:00:00Z',
      '2026-03-10T00:00:00Z',
      ['2026-03-09T07:00:00.000Z', '2026-03-09T12:00:00.000Z'], // Paris 08:00 CET and London 07:00 GMT coincide: one instant
    ],
  ])('%s in (%s, %s]', (text, from, to, expected) => {
    expect(iso(windowStartsBetween(schedule(text), at(from), at(to)))).toEqual(expected);
  });

  it('consecutive passes minute by minute through a whole week see every start exactly once', () => {
    const s = schedule('Mon-Fri 08:00-19:00 Europe/Paris; Sun 02:30-04:00 Europe/Paris; Sat 22:00-06:00 America/New_York');
    const seen: number[] = [];
    // The fall-back week in Paris, in 10-minute passes (bounded: 1,008 passes).
    for (let t = at('2026-10-24T00:00:00Z'); t < at('2026-10-31T00:00:00Z'); t += 600_000) seen.push(...windowStartsBetween(s, t, t + 600_000));
    expect(iso(seen)).toEqual([
      '2026-10-25T00:30:00.000Z', // Sun 02:30 CEST (the first of two)
      '2026-10-25T02:00:00.000Z', // Sat 22:00 EDT in New York
      '2026-10-26T07:00:00.000Z', // Mon 08:00 CET
      '2026-10-27T07:00:00.000Z',
      '2026-10-28T07:00:00.000Z',
      '2026-10-29T07:00:00.000Z',
      '2026-10-30T07:00:00.000Z',
    ]);
  });

  it('an empty or reversed span has no start; a span over a year is refused', () => {
    const s = schedule('Mon-Sun 00:00-24:00 UTC');
    expect(windowStartsBetween(s, at('2026-03-09T00:00:00Z'), at('2026-03-09T00:00:00Z'))).toEqual([]);
    expect(windowStartsBetween(s, at('2026-03-10T00:00:00Z'), at('2026-03-09T00:00:00Z'))).toEqual([]);
    expect(() => windowStartsBetween(s, 0, 367 * 86_400_000)).toThrow(RangeError);
  });
});
