import { describe, expect, it } from 'vitest';
import { isIanaZone, parseSchedule } from '../../lambda/core/power/schedule';

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
