/**
 * Every scheduled job. Each entry names a job file in this folder (without extension) whose top level
 * is one `runJob(...)` call to a domain service. Later issues append their jobs here.
 *
 * Timing: `interval` is milliseconds or a duration such as '1h', '15m', '30s'; `cron` is a cron
 * expression in the programme's time zone (DEFAULT_TIMEZONE). `firstRunAfter` runs the job once that
 * long after start-up, then on its interval; without it the first run is one interval after start-up.
 */
export interface JobDefinition {
  /** Unique; also the key of the job's advisory lock and the `job` column of job_runs. */
  name: string;
  /** Job file: a module name in src/jobs/ (e.g. 'purge-sessions'), or an absolute path to a .js/.mjs file. */
  file: string;
  interval?: number | string;
  cron?: string;
  firstRunAfter?: number | string;
  /** One line for operators: what the job does. */
  summary: string;
}

export const jobs: JobDefinition[] = [
  {
    name: 'purge-sessions',
    file: 'purge-sessions',
    interval: '1h',
    firstRunAfter: '1m',
    summary: 'Deletes expired console sessions and login attempts older than 30 days',
  },
  {
    name: 'retention',
    file: 'retention',
    cron: '30 3 * * *',
    summary: 'Erases conversation text older than RETENTION_MESSAGE_DAYS and the number and name of contacts without consent after RETENTION_UNCONSENTED_DAYS; compacts SQLite',
  },
  {
    name: 'broadcasts',
    file: 'broadcasts',
    interval: '30s',
    firstRunAfter: '15s',
    summary: 'Starts scheduled broadcasts and the daily or weekly occurrences of recurring ones when due; marks finished broadcasts completed',
  },
  {
    name: 'prune-job-runs',
    file: 'prune-job-runs',
    cron: '15 4 * * *',
    summary: 'Deletes job_runs records older than 30 days, and skipped runs older than 2 days',
  },
  {
    name: 'survey-timers',
    file: 'survey-timers',
    interval: '1m',
    firstRunAfter: '20s',
    summary: 'Starts scheduled survey runs, sends survey reminders, expires silent survey sessions and starts the next waiting ones',
  },
  {
    name: 'complaints-sla',
    file: 'complaints-sla',
    interval: '5m',
    firstRunAfter: '30s',
    summary: 'Escalates complaints past their service level (COMPLAINTS_SLA_*_HOURS), marks overdue psychosocial follow-ups, closes abandoned intakes, blanks outbox messages that name a case',
  },
  {
    name: 'cash-pdm',
    file: 'cash-pdm',
    cron: '0 9 * * *',
    summary: 'Starts post-distribution monitoring CASH_PDM_DAYS after each distribution (everyone, or a random sample for CASH_PDM_CONFIDENCE ± CASH_PDM_MARGIN) and carries on a start that was interrupted',
  },
  {
    name: 'weekly-report',
    file: 'weekly-report',
    cron: '0 6 * * 1',
    summary: "Builds last week's situation report (Monday to Sunday, DEFAULT_TIMEZONE) and stores it; staff read it on /reports/weekly",
  },
];
