/** A generated contact file for the import benchmark and tests: n rows, 1% of them bad in known ways. */

export const IMPORT_HEADER = ['Telefono', 'Nombre', 'Idioma', 'Region', 'Edad', 'Hogar'];
export const IMPORT_MAPPING = { phone: 'Telefono', name: 'Nombre', language: 'Idioma', region: 'Region', age_group: 'Edad', household_size: 'Hogar' };
export const AGE_GROUPS = ['18-24', '25-39', '40-59', '60+'];
const REGIONS = ['Lima', 'Tumbes', 'Piura', 'Cusco', 'Arequipa'];
const LANGS = ['es', 'es', 'es', 'en', 'pt-BR'];

/** The national number of row i (Peruvian mobile numbers, all distinct). */
export const nationalNumber = (i: number) => `9${String(10_000_000 + i).padStart(8, '0')}`;

export interface GeneratedFile {
  csv: string;
  rows: number;
  /** Row numbers (as in the file: the header is row 1) that must be reported, with the column. */
  bad: Map<number, string>;
}

/**
 * Every 100th row (i % 100 = 37) is bad, in turn: an impossible number, a duplicate of the row
 * before, an unknown age group, a household size that is not a number, an invalid language.
 */
export function generateCsv(n: number): GeneratedFile {
  const lines = [IMPORT_HEADER.join(',')];
  const bad = new Map<number, string>();
  for (let i = 0; i < n; i++) {
    let phone = i % 3 === 0 ? `+51 ${nationalNumber(i)}` : i % 3 === 1 ? nationalNumber(i) : `0051${nationalNumber(i)}`;
    let age = AGE_GROUPS[i % 4];
    let household = String(1 + (i % 9));
    let lang = LANGS[i % 5];
    const row = i + 2;
    if (i % 100 === 37) {
      switch (Math.floor(i / 100) % 5) {
        case 0:
          phone = '12345';
          bad.set(row, 'Telefono');
          break;
        case 1:
          phone = nationalNumber(i - 1);
          bad.set(row, 'Telefono');
          break;
        case 2:
          age = '18-25';
          bad.set(row, 'Edad');
          break;
        case 3:
          household = 'many';
          bad.set(row, 'Hogar');
          break;
        case 4:
          lang = 'zz-!!';
          bad.set(row, 'Idioma');
          break;
      }
    }
    lines.push([phone, `Persona ${i}`, lang, REGIONS[i % 5], age, household].join(','));
  }
  return { csv: lines.join('\n') + '\n', rows: n, bad };
}
