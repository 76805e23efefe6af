//! `servent::wire::decode` on arbitrary bytes: it must never panic, and
//! whatever it accepts must re-encode to a message that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use servent::wire::{decode, HEADER_LEN, MAX_PAYLOAD};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(message) = decode(bytes) {
        let again = message.encode();
        if again.len() - HEADER_LEN <= MAX_PAYLOAD {
            assert_eq!(decode(&again), Ok(message));
        }
    }
});
