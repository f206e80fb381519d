/**
 * The key-message bank: the review flow (two-person rule), strict variables at approval, versions,
 * and that nothing unapproved can be broadcast.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpError } from '../../src/http/errors.js';
import { createField } from '../../src/contacts/fields.js';
import { approveMessage, createMessage, getMessage, messageVersions, rejectMessage, submitMessage, updateMessage } from '../../src/broadcasts/messages.js';
import { createBroadcast, fanOut } from '../../src/broadcasts/broadcasts.js';
import { BroadcastRendering } from '../../src/broadcasts/render.js';
import { testServices } from '../helpers/services.js';
import { addList, addPerson, staff, type Staff } from './fixtures.js';

let s: Awaited<ReturnType<typeof testServices>>;
let st: Staff;
let listId: number;
beforeAll(async () => {
  s = await testServices();
  st = await staff(s.db);
  listId = await addList(s.db.knex, 'news');
  await addPerson(s.db.knex, { lists: [listId], name: 'Rosa', language: 'es' });
});
afterAll(() => s?.close());

async function refused(p: Promise<unknown>): Promise<HttpError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HttpError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('review flow', () => {
  it('an unapproved message cannot be broadcast, and its author cannot approve it', async () => {
    const m = await createMessage(s.db, st.author, { key: 'vacunas', title: 'Vacunación', topic: 'health', variants: { es: { text: 'Hola {{name}}: vacunación gratuita el sábado.' } } });
    expect(m.draft?.status).toBe('draft');
    expect(m.approved).toBeNull();

    const draftBroadcast = await refused(createBroadcast(s.db, s.config, st.author, { name: 'x', messageId: m.id, lists: [listId] }));
    expect(draftBroadcast.status).toBe(409);
    expect(draftBroadcast.code).toBe('message_not_approved');

    // A draft must be submitted before anyone approves it.
    expect((await refused(approveMessage(s.db, st.reviewer, m.id))).message).toContain('submit it for review first');
    await submitMessage(s.db, st.author, m.id);
    expect((await refused(createBroadcast(s.db, s.config, st.author, { name: 'x', messageId: m.id, lists: [listId] }))).code).toBe('message_not_approved');

    const own = await refused(approveMessage(s.db, st.author, m.id));
    expect(own.status).toBe(403);
    expect(own.code).toBe('two_person_rule');
    expect((await getMessage(s.db.knex, m.id)).approved).toBeNull();

    const approved = await approveMessage(s.db, st.reviewer, m.id);
    expect(approved.approved).toMatchObject({ version: 1, status: 'approved', reviewedById: st.reviewer.id });
    const b = await createBroadcast(s.db, s.config, st.author, { name: 'x', messageId: m.id, lists: [listId] });
    expect(b.messageVersionId).toBe(approved.approved!.id);
  });

  it('whoever edited a version cannot approve it either', async () => {
    const m = await createMessage(s.db, st.author, { key: 'efectivo', title: 'Pago', topic: 'cash', variants: { es: { text: 'El pago llega el lunes.' } } });
    await updateMessage(s.db, st.reviewer, m.id, { variants: { es: { text: 'El pago llega el martes.' } } });
    await submitMessage(s.db, st.author, m.id);
    expect((await refused(approveMessage(s.db, st.reviewer, m.id))).code).toBe('two_person_rule');
    expect((await refused(approveMessage(s.db, st.author, m.id))).code).toBe('two_person_rule');
    const third = (await staff(s.db, '-third')).reviewer;
    expect((await approveMessage(s.db, third, m.id)).approved?.variants.es.text).toBe('El pago llega el martes.');
  });

  it('refuses unknown variables at approval, naming the variant and suggesting the field; a syntax error is refused when saved', async () => {
    const broken = await refused(createMessage(s.db, st.author, { key: 'roto', title: 'Roto', topic: 'health', variants: { es: { text: 'Hola {{name' } } }));
    expect(broken.status).toBe(400);
    expect(broken.details?.['variants.es.text']).toMatch(/line 1/);
    const helper = await refused(createMessage(s.db, st.author, { key: 'roto2', title: 'Roto', topic: 'health', variants: { es: { text: '{{lookup fields "x"}}' } } }));
    expect(helper.details?.['variants.es.text']).toMatch(/helper/);

    const m = await createMessage(s.db, st.author, {
      key: 'region', title: 'Región', topic: 'documents',
      variants: { es: { text: 'Oficina en {{fields.regoin}}', template: { name: 'aviso_region', language: 'es', params: ['{{fields.distrito}}'] } }, en: { text: 'Office in {{fields.region}}' } },
    });
    await submitMessage(s.db, st.author, m.id);
    const e = await refused(approveMessage(s.db, st.reviewer, m.id));
    expect(e.status).toBe(400);
    expect(e.details?.['variants.es.text']).toContain('unknown variable {{fields.regoin}}');
    expect(e.details?.['variants.en.text']).toContain('unknown variable {{fields.region}}');
    expect(e.details?.['variants.es.template.params.0']).toContain('{{fields.distrito}}');
    expect((await getMessage(s.db.knex, m.id)).approved).toBeNull();

    await createField(s.db.knex, { key: 'region', label: 'Región', type: 'text' });
    const again = await refused(approveMessage(s.db, st.reviewer, m.id));
    expect(again.details?.['variants.es.text']).toContain('did you mean {{fields.region}}');
    expect(again.details?.['variants.en.text']).toBeUndefined();
    // The author fixes it (back to draft), submits again, another user approves.
    await updateMessage(s.db, st.author, m.id, { variants: { es: { text: 'Oficina en {{fields.region}}', template: { name: 'aviso_region', language: 'es', params: ['{{fields.region}}'] } }, en: { text: 'Office in {{fields.region}}' } } });
    await submitMessage(s.db, st.author, m.id);
    expect((await approveMessage(s.db, st.reviewer, m.id)).approved?.version).toBe(1);
  });

  it('a reviewer can send a version back with a note; it becomes a draft again', async () => {
    const m = await createMessage(s.db, st.author, { key: 'proteccion', title: 'Protección', topic: 'protection', variants: { es: { text: 'Línea de ayuda: 100' } } });
    await submitMessage(s.db, st.author, m.id);
    const back = await rejectMessage(s.db, st.reviewer, m.id, 'Añade el horario');
    expect(back.draft).toMatchObject({ status: 'draft', reviewNote: 'Añade el horario' });
    expect((await refused(approveMessage(s.db, st.reviewer, m.id))).message).toContain('submit it for review first');
  });
});

describe('versions', () => {
  it('editing an approved message makes a new draft; the approved version stays in use until the new one is approved; a broadcast keeps the version it was given', async () => {
    const m = await createMessage(s.db, st.author, { key: 'documentos', title: 'Documentos', topic: 'documents', variants: { es: { text: 'Trae tu DNI, {{name}}.' } } });
    await submitMessage(s.db, st.author, m.id);
    const v1 = (await approveMessage(s.db, st.reviewer, m.id)).approved!;
    const b1 = await createBroadcast(s.db, s.config, st.author, { name: 'docs 1', messageId: m.id, lists: [listId], quietHours: null });

    const edited = await updateMessage(s.db, st.author, m.id, { variants: { es: { text: 'Trae tu pasaporte, {{name}}.' } } });
    expect(edited.draft).toMatchObject({ version: 2, status: 'draft' });
    expect(edited.approved?.id).toBe(v1.id);
    // Still the approved v1 for a new broadcast.
    const b2 = await createBroadcast(s.db, s.config, st.author, { name: 'docs 2', messageId: m.id, lists: [listId], quietHours: null });
    expect(b2.messageVersionId).toBe(v1.id);

    await submitMessage(s.db, st.author, m.id);
    const v2 = (await approveMessage(s.db, st.reviewer, m.id)).approved!;
    expect(v2.version).toBe(2);
    const versions = await messageVersions(s.db.knex, m.id);
    expect(versions.map((v) => [v.version, v.status])).toEqual([[2, 'approved'], [1, 'superseded']]);

    // b1 sends exactly version 1, rendered at send time.
    await fanOut(s.db, s.config, b1.id);
    const row = await s.db.knex('outbox').where('broadcast_id', b1.id).first();
    const renderer = await new BroadcastRendering(s.db, s.config).rendererFor(b1.id);
    const [content] = await renderer!([{ outboxId: row.id, contactId: row.contact_id, broadcastId: b1.id, language: row.language }]);
    expect(content).toEqual({ type: 'text', text: 'Trae tu DNI, Rosa.' });
  });
});
