/**
 * SQL spellings of names the JavaScript also makes, for statements that build a job in
 * the database: they must stay equal to instanceNameFromSeq and computeQueueName
 * (test/integration/name-sql.test.ts compares them).
 */

/** instance-%08x of an instances.seq column (common/instance-name.ts). */
export const instanceNameSql = (seq: string) => `('instance-' || lpad(to_hex(${seq}), 8, '0'))`;

/** compute.<host> with every other character than [A-Za-z0-9._-] as "_" (common/queues.ts). */
export const computeQueueSql = (host: string) => `('compute.' || regexp_replace(${host}, '[^A-Za-z0-9._-]', '_', 'g'))`;
