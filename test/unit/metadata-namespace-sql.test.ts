// du's maintained holdings store each repository's namespace as SQL computes it (schema.ts
// namespaceOfSql, in migration 5's backfill and on every refresh), while du's per-namespace rows
// and the web page group by names.ts namespaceOf: the two must agree on every shape of name.
// SQLite in memory runs its expression; PostgreSQL's (split_part) is exercised by the
// integration tests (storage-usage-holdings).
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { namespaceOf } from '../../src/registry/names.js';
import { namespaceOfIn, namespaceOfSql } from '../../src/registry/storage/metadata/schema.js';

const NAMES = ['alpine', 'library/alpine', 'docker.io/library/alpine', 'a/b/c/d', 'ghcr.io/org/x-y_z.1', 'a0/b'];

describe('the namespace of a name in SQL', () => {
  it('equals names.ts namespaceOf on SQLite', () => {
    const db = new Database(':memory:');
    try {
      const select = db.prepare(`SELECT ${namespaceOfSql('value', 'sqlite')} AS ns FROM json_each(?) ORDER BY key`);
      const rows = select.all(JSON.stringify(NAMES)) as { ns: string }[];
      expect(rows.map((r) => r.ns)).toEqual(NAMES.map(namespaceOf));
    } finally {
      db.close();
    }
  });

  it('is spelt per engine where a migration statement says NAMESPACE_OF(column)', () => {
    const statement = 'SELECT NAMESPACE_OF(h.repository), NAMESPACE_OF(name) FROM t';
    expect(namespaceOfIn(statement, 'postgres')).toBe("SELECT split_part(h.repository, '/', 1), split_part(name, '/', 1) FROM t");
    expect(namespaceOfIn(statement, 'sqlite')).toBe(`SELECT ${namespaceOfSql('h.repository', 'sqlite')}, ${namespaceOfSql('name', 'sqlite')} FROM t`);
  });
});
