-- E-mail addresses are field-encrypted (random nonces), so equality lookups and uniqueness move to a
-- keyed hash of the normalised address. `chatwizard migrate` fills both for rows written before this
-- (it holds the key ring; SQL does not).
ALTER TABLE users ADD COLUMN email_index bytea;
ALTER TABLE users DROP CONSTRAINT users_email_key;
CREATE UNIQUE INDEX users_email_index_key ON users (email_index);
