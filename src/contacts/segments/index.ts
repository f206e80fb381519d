/** Segments: the query language, saved segments and audiences. */
export { SegmentError, type Position } from './errors.js';
export { parseSegment, tokenize, type Node } from './parser.js';
export { loadCatalog, buildCatalog, BUILT_IN, CONSENT_PURPOSES, MEDIA, type Catalog, type Attribute, type CustomFieldDef } from './catalog.js';
export { compileSegment, dialectOf, type CompiledSegment, type Dialect } from './compile.js';
export {
  audienceQuery,
  countAudience,
  countQuery,
  compileQuery,
  createSegment,
  updateSegment,
  deleteSegment,
  listSegments,
  findSegment,
  getSegment,
  segmentHttpError,
  segmentInput,
  segmentPatch,
  type AudienceSpec,
  type Segment,
  type SegmentCount,
} from './service.js';
