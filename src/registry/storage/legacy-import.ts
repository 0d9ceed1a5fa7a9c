// Imports a data directory in the file layout of layover before the SQL metadata (placeholder:
// the importer lands in the next commit).
import type { SqliteMetadata } from './metadata/sqlite.js';

export async function importLegacyMetadata(_root: string, _metadata: SqliteMetadata): Promise<void> {}
