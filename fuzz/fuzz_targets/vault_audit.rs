#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { custody_ingest::fuzzing::vault_audit(data); });
