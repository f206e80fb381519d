/**
 * The words of the cash domain: beneficiary statuses, distribution modalities, transfer statuses,
 * the PDM survey's key, and the export profiles (what each recipient of a beneficiary file may see).
 */
export const BENEFICIARY_STATUSES = ['candidate', 'enrolled', 'excluded'] as const;
export type BeneficiaryStatus = (typeof BENEFICIARY_STATUSES)[number];

export const BENEFICIARY_SOURCES = ['segment', 'survey', 'import', 'manual'] as const;
export type BeneficiarySource = (typeof BENEFICIARY_SOURCES)[number];

export const MODALITIES = ['cash', 'mobile_money', 'voucher', 'card'] as const;
export type Modality = (typeof MODALITIES)[number];

export const TRANSFER_STATUSES = ['pending', 'paid', 'failed', 'returned'] as const;
export type TransferStatus = (typeof TRANSFER_STATUSES)[number];

export const GENDERS = ['female', 'male', 'other'] as const;
export const AGE_GROUPS = ['0-17', '18-24', '25-59', '60+'] as const;

/** How a duplicate was resolved: keep one (the other is excluded), keep both, or exclude both. */
export const DUPLICATE_ACTIONS = ['keep_one', 'keep_both', 'exclude_both'] as const;
export type DuplicateAction = (typeof DUPLICATE_ACTIONS)[number];

/** The shipped PDM survey (surveys/pdm-cash.yaml). */
export const PDM_SURVEY = 'pdm-cash';

/** PDM recipient statuses (table cash_pdm). */
export const PDM_STATUSES = ['selected', 'sent', 'skipped', 'completed', 'declined', 'partial', 'no_answer'] as const;
export type PdmStatus = (typeof PDM_STATUSES)[number];

export function ageGroup(age: number): (typeof AGE_GROUPS)[number] {
  if (age < 18) return '0-17';
  if (age < 25) return '18-24';
  if (age < 60) return '25-59';
  return '60+';
}

/** What a household id is compared by: lower case, without spaces, dashes or dots ("HH-001" = "hh 001"). */
export function householdKey(id: string): string {
  return id.normalize('NFKC').toLowerCase().replace(/[\s._\-/]+/g, '').slice(0, 64);
}

// ------------------------------------------------------------------------------ export profiles

export const EXPORT_FIELDS = [
  'beneficiary_id', 'household_id', 'name', 'phone', 'admin1', 'admin2', 'admin3', 'household_size', 'vulnerability', 'gender', 'age_group',
  'status', 'excluded_reason', 'amount', 'currency', 'transfer_status', 'provider_ref',
] as const;
export type ExportField = (typeof EXPORT_FIELDS)[number];

export interface ExportProfile {
  key: string;
  /** Who gets the file. */
  label: { en: string; es: string };
  fields: readonly ExportField[];
  /** Needs a distribution (amounts and transfer statuses). */
  needsDistribution: boolean;
  /** Statuses exported by default. */
  statuses: readonly (typeof BENEFICIARY_STATUSES)[number][];
}

/**
 * Each recipient gets only the fields it needs. The payment provider never sees vulnerability
 * criteria, gender or age; field monitors never see phone numbers.
 */
export const EXPORT_PROFILES: readonly ExportProfile[] = [
  {
    key: 'payment_provider',
    label: { en: 'Payment provider', es: 'Proveedor de pagos' },
    fields: ['household_id', 'name', 'phone', 'amount', 'currency'],
    needsDistribution: true,
    statuses: ['enrolled'],
  },
  {
    key: 'cash_team',
    label: { en: 'Cash team (full list)', es: 'Equipo de efectivo (lista completa)' },
    fields: ['beneficiary_id', 'household_id', 'name', 'phone', 'admin1', 'admin2', 'admin3', 'household_size', 'vulnerability', 'gender', 'age_group', 'status', 'excluded_reason'],
    needsDistribution: false,
    statuses: ['candidate', 'enrolled', 'excluded'],
  },
  {
    key: 'field_verification',
    label: { en: 'Field verification (no phone numbers)', es: 'Verificación en terreno (sin teléfonos)' },
    fields: ['household_id', 'name', 'admin1', 'admin2', 'admin3', 'household_size'],
    needsDistribution: false,
    statuses: ['candidate', 'enrolled'],
  },
  {
    key: 'reconciliation',
    label: { en: 'Payment reconciliation', es: 'Conciliación de pagos' },
    fields: ['household_id', 'phone', 'amount', 'currency', 'transfer_status', 'provider_ref'],
    needsDistribution: true,
    statuses: ['enrolled'],
  },
];

export function exportProfile(key: string): ExportProfile | undefined {
  return EXPORT_PROFILES.find((p) => p.key === key);
}
