-- Custody's PostgreSQL store, schema version 1 (custody-store-postgres, DESIGN §9).
--
-- Applied by the store on open, in one transaction under an advisory lock, and recorded in
-- custody_schema. Never edit an applied migration: add the next numbered file instead.
--
-- Plain SQL on purpose (docs/scale-out.md): no sequences, no serial columns, no partial or
-- expression indexes, no SELECT ... FOR UPDATE SKIP LOCKED, no LISTEN/NOTIFY; every key is
-- written by the store, under its append lock.

-- The log: idx is the Merkle leaf index; body the RFC 8785 bytes, leaf_hash their RFC 9162
-- leaf hash. source, id and type are for people reading the table; they are not indexed.
CREATE TABLE events (
    idx       BIGINT PRIMARY KEY CHECK (idx >= 0),
    source    TEXT   NOT NULL,
    id        TEXT   NOT NULL,
    type      TEXT   NOT NULL,
    body      BYTEA  NOT NULL,
    leaf_hash BYTEA  NOT NULL CHECK (length(leaf_hash) = 32)
);

-- Every way an event can be found (key, id, credential, parent credential, chain, resource,
-- secret, referenced ids, principals) as a 64-bit hash of a tag and the text: one row per
-- key and batch, first = the first index linked, more = the gaps to the others (LEB128).
CREATE TABLE links (
    key   BIGINT NOT NULL,
    first BIGINT NOT NULL,
    more  BYTEA  NOT NULL,
    PRIMARY KEY (key, first)
);

CREATE TABLE quarantine (
    seq     BIGINT PRIMARY KEY CHECK (seq >= 0),
    file    TEXT   NOT NULL,
    line    BIGINT NOT NULL,
    reason  TEXT   NOT NULL,
    excerpt TEXT   NOT NULL
);

CREATE TABLE checkpoints (
    size BIGINT PRIMARY KEY CHECK (size >= 0),
    root BYTEA  NOT NULL CHECK (length(root) = 32),
    note TEXT   NOT NULL
);

-- One row: the log's size and compact range (Merkle frontier), written in the transaction
-- of each batch, so that root() is one read and every node sees the same head.
CREATE TABLE log_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    size          BIGINT  NOT NULL CHECK (size >= 0),
    compact_range BYTEA   NOT NULL
);
INSERT INTO log_state (id, size, compact_range) VALUES (1, 0, '\x0000000000000000'::bytea);

-- Append-only, enforced by the database: a guard against mistakes and casual edits. Someone
-- who owns the tables can drop these triggers; the Merkle tree and the signed checkpoints
-- catch what they then change (custody verify).
CREATE FUNCTION custody_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'custody: % is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE FUNCTION custody_log_only_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.size < OLD.size THEN
        RAISE EXCEPTION 'custody: the log only grows (size % to %)', OLD.size, NEW.size
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER links_append_only BEFORE UPDATE OR DELETE ON links
    FOR EACH ROW EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER links_no_truncate BEFORE TRUNCATE ON links
    FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER quarantine_append_only BEFORE UPDATE OR DELETE ON quarantine
    FOR EACH ROW EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER quarantine_no_truncate BEFORE TRUNCATE ON quarantine
    FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER log_state_no_delete BEFORE DELETE ON log_state
    FOR EACH ROW EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER log_state_no_truncate BEFORE TRUNCATE ON log_state
    FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER log_state_only_grows BEFORE UPDATE ON log_state
    FOR EACH ROW EXECUTE FUNCTION custody_log_only_grows();
