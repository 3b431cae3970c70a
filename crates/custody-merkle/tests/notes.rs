//! Signed notes, key strings and checkpoints: byte-for-byte agreement with the Go reference
//! implementation's published example, round trips, and one test per way a note, key or
//! checkpoint must be rejected.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use custody_merkle::{
    leaf_hash, root, sign_note, Checkpoint, NoteError, NoteSigner, NoteVerifier, SignedNote,
    UnverifiedCheckpoint,
};

// The example key, text and signature of golang.org/x/mod/sumdb/note's tests and documentation.
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n";
const GO_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

const ORIGIN: &str = "custody.example/log";

fn signer(seed: u8) -> NoteSigner {
    NoteSigner::generate(ORIGIN, [seed; 32]).unwrap()
}

fn checkpoint() -> Checkpoint {
    let leaves: Vec<_> = (0..5u8).map(|i| leaf_hash(&[i])).collect();
    Checkpoint {
        origin: ORIGIN.to_owned(),
        size: 5,
        root: root(&leaves),
    }
}

/// A note with the given body, signed by `s` (bypassing checkpoint validation).
fn note_with_body(body: &str, s: &NoteSigner) -> String {
    sign_note(body, &[s]).unwrap()
}

fn parse_err(note: impl AsRef<[u8]>) -> NoteError {
    UnverifiedCheckpoint::parse(note).unwrap_err()
}

// ---------------------------------------------------------------------------------------------
// Agreement with the Go reference implementation
// ---------------------------------------------------------------------------------------------

#[test]
fn go_reference_keys_parse_and_format_back() {
    let signer = NoteSigner::parse(GO_SKEY).unwrap();
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(hex::encode(signer.key_id()), "c74f20a3");
    assert_eq!(signer.to_private_key_string(), GO_SKEY);
    assert_eq!(signer.verifier().to_string(), GO_VKEY);

    let verifier = NoteVerifier::parse(GO_VKEY).unwrap();
    assert_eq!(verifier.to_string(), GO_VKEY);
    assert_eq!(verifier, signer.verifier());
    // A key file's trailing newline is fine.
    assert_eq!(
        NoteVerifier::parse(&format!("{GO_VKEY}\n")).unwrap(),
        verifier
    );
}

#[test]
fn go_reference_note_signs_byte_for_byte_and_verifies() {
    let signer = NoteSigner::parse(GO_SKEY).unwrap();
    let note = sign_note(GO_TEXT, &[&signer]).unwrap();
    assert_eq!(note, format!("{GO_TEXT}\n{GO_SIG}"));

    let parsed = SignedNote::parse(&note).unwrap();
    assert_eq!(parsed.text(), GO_TEXT);
    assert_eq!(parsed.signatures().len(), 1);
    parsed
        .verify(&NoteVerifier::parse(GO_VKEY).unwrap())
        .unwrap();

    let tampered = note.replace("cryptography", "cryptographY");
    assert_eq!(
        SignedNote::parse(&tampered)
            .unwrap()
            .verify(&NoteVerifier::parse(GO_VKEY).unwrap()),
        Err(NoteError::InvalidSignature("PeterNeumann".into()))
    );
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

#[test]
fn generated_keys_round_trip_through_their_strings() {
    let s = signer(7);
    let text = s.to_private_key_string();
    assert!(text.starts_with(&format!("PRIVATE+KEY+{ORIGIN}+")));
    let back = NoteSigner::parse(&text).unwrap();
    assert_eq!(back.to_private_key_string(), text);
    assert_eq!(back.verifier(), s.verifier());
    let vkey = s.verifier().to_string();
    assert_eq!(NoteVerifier::parse(&vkey).unwrap(), s.verifier());
    assert_eq!(vkey.parse::<NoteVerifier>().unwrap(), s.verifier());
    // Same seed, same key; Debug never shows the secret.
    assert_eq!(signer(7).to_private_key_string(), text);
    assert!(!format!("{s:?}").contains(text.rsplit('+').next().unwrap()));
}

#[test]
fn key_names_are_checked() {
    for bad in ["", "a b", "a+b", "tab\tname", "new\nline"] {
        assert!(
            matches!(
                NoteSigner::generate(bad, [1; 32]),
                Err(NoteError::InvalidKeyName(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn verifier_key_rejections() {
    let good = GO_VKEY;
    let (name, rest) = good.split_once('+').unwrap();
    let (id, key) = rest.split_once('+').unwrap();
    let cases: Vec<(String, &str)> = vec![
        ("PeterNeumann".into(), "no separators"),
        (format!("{name}+{id}"), "no key"),
        (format!("{name}+c74f20a+{key}"), "7 hex digits"),
        (format!("{name}+c74f20ag+{key}"), "non-hex id"),
        (format!("{name}+c74f20a4+{key}"), "wrong id"),
        (format!("Peter+{id}+{key}"), "other name, so other id"),
        (
            format!("{name}+{id}+{}", &key[..key.len() - 4]),
            "truncated key",
        ),
        (format!("{name}+{id}+{key}="), "bad padding"),
        (
            format!("{name}+{id}+{}", key.replacen('A', "B", 1)),
            "algorithm 0x05",
        ),
        (format!("+{id}+{key}"), "empty name"),
    ];
    for (vkey, why) in &cases {
        assert!(NoteVerifier::parse(vkey).is_err(), "{why}: {vkey}");
    }
    assert!(matches!(
        NoteVerifier::parse(&format!("{name}+c74f20a4+{key}")),
        Err(NoteError::KeyIdMismatch { .. })
    ));
    assert!(matches!(
        NoteVerifier::parse(&format!("{name}+{id}+{}", key.replacen('A', "B", 1))),
        Err(NoteError::UnsupportedAlgorithm(0x05))
    ));
    // A small-order public key (the identity point), under which anyone can sign, is refused
    // even with a correct key id.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let id = custody_merkle::key_id("weak", &identity);
    let material = B64.encode([&[0x01u8][..], &identity[..]].concat());
    assert_eq!(
        NoteVerifier::parse(&format!("weak+{}+{material}", hex::encode(id))),
        Err(NoteError::InvalidPublicKey)
    );
}

#[test]
fn private_key_rejections() {
    let key = GO_SKEY.rsplit('+').next().unwrap();
    for bad in [
        GO_SKEY.replacen("PRIVATE+KEY+", "PRIVATE+", 1),
        GO_SKEY.replacen("PRIVATE", "PUBLIC", 1),
        GO_SKEY.replacen("c74f20a3", "c74f20a4", 1),
        GO_SKEY.replacen("c74f20a3", "c74f20a", 1),
        GO_SKEY.replacen("PeterNeumann", "Peter Neumann", 1),
        GO_SKEY.replacen(key, &key[..key.len() - 4], 1),
        GO_VKEY.to_owned(),
    ] {
        assert!(NoteSigner::parse(&bad).is_err(), "{bad}");
    }
    assert!(matches!(
        NoteSigner::parse(&GO_SKEY.replacen("c74f20a3", "c74f20a4", 1)),
        Err(NoteError::KeyIdMismatch { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Checkpoints: the happy path
// ---------------------------------------------------------------------------------------------

#[test]
fn checkpoint_body_is_the_c2sp_form() {
    let cp = checkpoint();
    assert_eq!(cp.body(), format!("{ORIGIN}\n5\n{}\n", B64.encode(cp.root)));
}

#[test]
fn checkpoint_signs_parses_and_verifies() {
    let s = signer(1);
    let cp = checkpoint();
    let note = cp.sign(&s).unwrap();
    assert!(note.starts_with(&format!("{}\n\u{2014} {ORIGIN} ", cp.body())));
    assert!(note.ends_with('\n'));
    let unverified = UnverifiedCheckpoint::parse(&note).unwrap();
    assert_eq!(unverified.origin(), ORIGIN);
    assert_eq!(unverified.clone().verify(&s.verifier()).unwrap(), cp);
    assert_eq!(
        unverified
            .clone()
            .verify_for_origin(&s.verifier(), ORIGIN)
            .unwrap(),
        cp
    );
    assert_eq!(
        unverified.verify_for_origin(&s.verifier(), "other.example/log"),
        Err(NoteError::OriginMismatch {
            expected: "other.example/log".into(),
            found: ORIGIN.into()
        })
    );
    // Bytes work as well as text.
    UnverifiedCheckpoint::parse(note.as_bytes())
        .unwrap()
        .verify(&s.verifier())
        .unwrap();
}

#[test]
fn extension_lines_are_accepted() {
    let s = signer(1);
    let cp = checkpoint();
    let note = note_with_body(&format!("{}ext one\next two\n", cp.body()), &s);
    let unverified = UnverifiedCheckpoint::parse(&note).unwrap();
    assert_eq!(unverified.extensions(), ["ext one", "ext two"]);
    assert_eq!(unverified.verify(&s.verifier()).unwrap(), cp);
}

#[test]
fn size_zero_checkpoint() {
    let s = signer(1);
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size: 0,
        root: custody_merkle::EMPTY_ROOT,
    };
    let note = cp.sign(&s).unwrap();
    assert!(note.contains("\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"));
    assert_eq!(
        UnverifiedCheckpoint::parse(&note)
            .unwrap()
            .verify(&s.verifier())
            .unwrap(),
        cp
    );
}

#[test]
fn unknown_keys_are_ignored_but_the_expected_key_is_required() {
    let log = signer(1);
    let witness = NoteSigner::generate("witness.example/w1", [2; 32]).unwrap();
    let cp = checkpoint();
    let both = sign_note(&cp.body(), &[&witness, &log]).unwrap();
    assert_eq!(
        UnverifiedCheckpoint::parse(&both)
            .unwrap()
            .verify(&log.verifier())
            .unwrap(),
        cp
    );
    // Only an unknown key's signature: no valid signature by the expected key.
    let only_witness = sign_note(&cp.body(), &[&witness]).unwrap();
    assert!(matches!(
        UnverifiedCheckpoint::parse(&only_witness)
            .unwrap()
            .verify(&log.verifier()),
        Err(NoteError::NoValidSignature { .. })
    ));
    // The same name with another key is another key (its id differs): ignored, so not enough.
    let impostor = signer(3);
    let forged = cp.sign(&impostor).unwrap();
    assert!(matches!(
        UnverifiedCheckpoint::parse(&forged)
            .unwrap()
            .verify(&log.verifier()),
        Err(NoteError::NoValidSignature { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Checkpoints and notes: every rejection
// ---------------------------------------------------------------------------------------------

#[test]
fn rejects_a_tampered_body() {
    let s = signer(1);
    let note = checkpoint().sign(&s).unwrap();
    let tampered = note.replacen("\n5\n", "\n6\n", 1);
    assert_eq!(
        UnverifiedCheckpoint::parse(&tampered)
            .unwrap()
            .verify(&s.verifier()),
        Err(NoteError::InvalidSignature(ORIGIN.into()))
    );
}

#[test]
fn rejects_a_flipped_signature_bit() {
    let s = signer(1);
    let note = checkpoint().sign(&s).unwrap();
    let (body, sig_line) = note.split_once("\n\n").unwrap();
    let b64 = sig_line.trim_end().rsplit(' ').next().unwrap();
    let mut blob = B64.decode(b64).unwrap();
    blob[10] ^= 0x01;
    let bad = format!("{body}\n\n\u{2014} {ORIGIN} {}\n", B64.encode(blob));
    assert_eq!(
        UnverifiedCheckpoint::parse(&bad)
            .unwrap()
            .verify(&s.verifier()),
        Err(NoteError::InvalidSignature(ORIGIN.into()))
    );
}

#[test]
fn rejects_a_duplicate_signature_by_the_expected_key() {
    let s = signer(1);
    let note = checkpoint().sign(&s).unwrap();
    let line = note.split_once("\n\n").unwrap().1;
    let doubled = format!("{note}{line}");
    assert_eq!(
        UnverifiedCheckpoint::parse(&doubled)
            .unwrap()
            .verify(&s.verifier()),
        Err(NoteError::DuplicateSignature(ORIGIN.into()))
    );
}

#[test]
fn rejects_a_missing_blank_line() {
    let s = signer(1);
    let note = checkpoint().sign(&s).unwrap();
    let joined = note.replacen("\n\n", "\n", 1);
    assert_eq!(parse_err(joined), NoteError::MissingBlankLine);
}

#[test]
fn rejects_bad_base64_in_a_signature() {
    let s = signer(1);
    let note = checkpoint().sign(&s).unwrap();
    let (body, line) = note.split_once("\n\n").unwrap();
    let b64 = line.trim_end().rsplit(' ').next().unwrap();
    for bad in [
        b64.replacen('=', "", 1),              // missing padding
        format!("{}!", &b64[..b64.len() - 1]), // not base64
        format!("{b64}AAAA="),                 // bad length
    ] {
        let note = format!("{body}\n\n\u{2014} {ORIGIN} {bad}\n");
        assert_eq!(
            parse_err(&note),
            NoteError::InvalidBase64("signature line"),
            "{bad}"
        );
    }
}

#[test]
fn rejects_malformed_signature_lines() {
    let s = signer(1);
    let note = checkpoint().sign(&s).unwrap();
    let body = note.split_once("\n\n").unwrap().0;
    let short = B64.encode([1u8, 2, 3, 4]); // a key id and no signature
    for line in [
        format!("- {ORIGIN} AAAA"),         // hyphen, not an em dash
        format!("\u{2014}{ORIGIN} AAAA"),   // no space after the dash
        format!("\u{2014} {ORIGIN}"),       // no signature
        "\u{2014}  AAAAAAAA".to_owned(),    // empty name
        "\u{2014} a+b AAAAAAAA".to_owned(), // a + in the name
        format!("\u{2014} {ORIGIN} {short}"),
        String::new(), // an empty line in the signature block
    ] {
        let note = format!("{body}\n\n{line}\n");
        assert!(
            matches!(
                parse_err(&note),
                NoteError::MalformedSignatureLine { .. } | NoteError::NoSignatures
            ),
            "{line:?}: {:?}",
            parse_err(&note)
        );
    }
}

#[test]
fn rejects_a_note_without_signatures() {
    let body = checkpoint().body();
    assert_eq!(parse_err(format!("{body}\n")), NoteError::NoSignatures);
    assert!(matches!(
        sign_note(&body, &[]),
        Err(NoteError::NoSignatures)
    ));
}

#[test]
fn rejects_a_body_or_note_not_ending_in_newline() {
    let s = signer(1);
    assert_eq!(
        sign_note("origin\n1\nroot", &[&s]),
        Err(NoteError::MissingNewline("note text"))
    );
    let note = checkpoint().sign(&s).unwrap();
    assert_eq!(
        parse_err(note.trim_end_matches('\n')),
        NoteError::MissingNewline("note")
    );
}

#[test]
fn rejects_non_utf8() {
    let s = signer(1);
    let mut note = checkpoint().sign(&s).unwrap().into_bytes();
    note[2] = 0xff;
    assert_eq!(parse_err(&note), NoteError::NotUtf8);
}

#[test]
fn rejects_control_characters() {
    let s = signer(1);
    let note = checkpoint().sign(&s).unwrap();
    assert_eq!(
        parse_err(note.replacen('\n', "\r\n", 1)),
        NoteError::ControlCharacter(0x0d)
    );
    assert_eq!(
        parse_err(note.replacen("custody", "cus\ttody", 1)),
        NoteError::ControlCharacter(0x09)
    );
    assert_eq!(
        sign_note("a\u{0}b\n", &[&s]),
        Err(NoteError::ControlCharacter(0))
    );
}

#[test]
fn rejects_sizes_that_are_not_plain_decimals() {
    let s = signer(1);
    let root = B64.encode(checkpoint().root);
    for size in [
        "05",
        "00",
        "+5",
        "-5",
        "5 ",
        " 5",
        "5a",
        "0x5",
        "５",
        "18446744073709551616",
    ] {
        let note = note_with_body(&format!("{ORIGIN}\n{size}\n{root}\n"), &s);
        assert_eq!(
            parse_err(&note),
            NoteError::InvalidSize(size.into()),
            "{size:?}"
        );
    }
    // The largest u64 is fine.
    let note = note_with_body(&format!("{ORIGIN}\n18446744073709551615\n{root}\n"), &s);
    assert_eq!(
        UnverifiedCheckpoint::parse(&note)
            .unwrap()
            .verify(&s.verifier())
            .unwrap()
            .size,
        u64::MAX
    );
}

#[test]
fn rejects_roots_that_are_not_32_bytes() {
    let s = signer(1);
    for (root, want) in [
        (B64.encode([7u8; 31]), NoteError::InvalidRootLength(31)),
        (B64.encode([7u8; 33]), NoteError::InvalidRootLength(33)),
        (String::new(), NoteError::EmptyLine(3)),
        (
            "not base64!".into(),
            NoteError::InvalidBase64("checkpoint root"),
        ),
        (
            B64.encode([7u8; 32]).trim_end_matches('=').into(),
            NoteError::InvalidBase64("checkpoint root"),
        ),
        (hex::encode([7u8; 32]), NoteError::InvalidRootLength(48)),
    ] {
        let note = note_with_body(&format!("{ORIGIN}\n5\n{root}\n"), &s);
        assert_eq!(parse_err(&note), want, "{root:?}");
    }
}

#[test]
fn rejects_too_few_lines_and_empty_lines() {
    let s = signer(1);
    let root = B64.encode(checkpoint().root);
    assert_eq!(
        parse_err(note_with_body(&format!("{ORIGIN}\n5\n"), &s)),
        NoteError::TooFewLines(2)
    );
    assert_eq!(
        parse_err(note_with_body(&format!("{ORIGIN}\n"), &s)),
        NoteError::TooFewLines(1)
    );
    // An empty origin line.
    assert_eq!(
        parse_err(format!("\n5\n{root}\n\n\u{2014} x AAAAAAAA\n")),
        NoteError::EmptyLine(1)
    );
    // No text at all before the blank line.
    assert_eq!(parse_err("\n\n\u{2014} x AAAAAAAA\n"), NoteError::EmptyText);
    assert_eq!(
        checkpoint_with_origin("").sign(&s),
        Err(NoteError::EmptyLine(1))
    );
    assert_eq!(
        checkpoint_with_origin("a\nb").sign(&s),
        Err(NoteError::ControlCharacter(0x0a))
    );
}

fn checkpoint_with_origin(origin: &str) -> Checkpoint {
    Checkpoint {
        origin: origin.into(),
        ..checkpoint()
    }
}

#[test]
fn rejects_too_many_signatures() {
    let s = signer(1);
    let note = checkpoint().sign(&s).unwrap();
    let line = note.split_once("\n\n").unwrap().1;
    let many = format!("{note}{}", line.repeat(100));
    assert_eq!(parse_err(&many), NoteError::TooManySignatures(101));
}
