/*
 * NCRONTAB (second minute hour day month weekday, UTC), as the Functions host reads timer
 * schedules: the local host runs timers by it, and the CLI and the admin API say when the next
 * reconcile runs and how long two reconciles take.
 */
interface CronField {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly names?: readonly string[];
}

const cronFields: readonly CronField[] = [
  { name: 'second', min: 0, max: 59 },
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day', min: 1, max: 31 },
  {
    name: 'month',
    min: 1,
    max: 12,
    names: [
      'january',
      'february',
      'march',
      'april',
      'may',
      'june',
      'july',
      'august',
      'september',
      'october',
      'november',
      'december',
    ],
  },
  {
    name: 'weekday',
    min: 0,
    max: 6,
    names: ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'],
  },
];

/** Every Gregorian weekday/date pattern repeats within 400 years, so a schedule silent that long never fires. */
const cronHorizonYears = 400;

function parseNcrontab(expression: string): ReadonlySet<number>[] {
  const fail = (detail: string): never => {
    throw new Error(`invalid NCRONTAB expression "${expression}": ${detail}`);
  };
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== cronFields.length)
    fail(
      `expected 6 fields (second minute hour day month weekday), got ${expression.trim() === '' ? 0 : parts.length}`,
    );
  return cronFields.map((field, index) => {
    const values = new Set<number>();
    const value = (token: string): number => {
      if (/^\d+$/.test(token)) {
        const number = Number(token);
        if (number < field.min || number > field.max)
          fail(`${field.name} ${number} is outside ${field.min}-${field.max}`);
        return number;
      }
      // NCrontab takes any prefix of a month or weekday name, first match wins ("Jan", "Mon", "T" = Tuesday).
      const lower = token.toLowerCase();
      const named = token === '' ? -1 : (field.names?.findIndex((name) => name.startsWith(lower)) ?? -1);
      if (named < 0) fail(`"${token}" is not a ${field.name} value`);
      return named + field.min;
    };
    for (const item of parts[index]!.split(',')) {
      const match = /^([^/]*)(?:\/(.*))?$/.exec(item)!;
      const [, range = '', stepText] = match;
      if (stepText !== undefined && !/^[1-9]\d*$/.test(stepText))
        fail(`step "${stepText}" in ${field.name} is not a positive integer`);
      const step = stepText === undefined ? 1 : Number(stepText);
      let first: number;
      let last: number;
      if (range === '*') {
        first = field.min;
        last = field.max;
      } else if (range.includes('-')) {
        const [from = '', to = '', ...rest] = range.split('-');
        if (rest.length > 0) fail(`"${range}" is not a ${field.name} range`);
        first = value(from);
        last = value(to);
        if (first > last) fail(`${field.name} range ${range} runs backwards`);
      } else {
        first = value(range);
        // As in NCrontab, "a/n" means from a to the field's end, every n.
        last = stepText === undefined ? first : field.max;
      }
      for (let number = first; number <= last; number += step) values.add(number);
    }
    return values;
  });
}

/**
 * The first time strictly after `after`, at a whole second, that the 6-field NCRONTAB expression
 * (second minute hour day month weekday) matches, in UTC. As in NCrontab (unlike Vixie cron), a
 * restricted day and weekday must both match.
 */
export function nextOccurrence(expression: string, after: Date): Date {
  if (Number.isNaN(after.getTime())) throw new RangeError('nextOccurrence needs a valid date');
  const [seconds, minutes, hours, days, months, weekdays] = parseNcrontab(expression) as [
    ReadonlySet<number>,
    ReadonlySet<number>,
    ReadonlySet<number>,
    ReadonlySet<number>,
    ReadonlySet<number>,
    ReadonlySet<number>,
  ];
  let time = new Date(Math.floor(after.getTime() / 1000) * 1000 + 1000);
  const lastYear = after.getUTCFullYear() + cronHorizonYears;
  while (time.getUTCFullYear() <= lastYear) {
    const [year, month, day, hour, minute] = [
      time.getUTCFullYear(),
      time.getUTCMonth(),
      time.getUTCDate(),
      time.getUTCHours(),
      time.getUTCMinutes(),
    ];
    if (!months.has(month + 1)) time = new Date(Date.UTC(year, month + 1, 1));
    else if (!days.has(day) || !weekdays.has(time.getUTCDay()))
      time = new Date(Date.UTC(year, month, day + 1));
    else if (!hours.has(hour)) time = new Date(Date.UTC(year, month, day, hour + 1));
    else if (!minutes.has(minute)) time = new Date(Date.UTC(year, month, day, hour, minute + 1));
    else if (!seconds.has(time.getUTCSeconds())) time = new Date(time.getTime() + 1000);
    else return time;
  }
  throw new Error(`NCRONTAB expression "${expression}" never occurs`);
}
