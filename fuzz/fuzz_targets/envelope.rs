//! The envelope parser: never panics; what it accepts keeps its id's exact
//! spelling and is one of the four shapes. The streaming response-id
//! scanner (for lines too long to keep) never panics, and finds exactly
//! the id the parser finds for a response, in any chunking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpod_core::envelope::ResponseIdScanner;
use mcpod_core::{Id, Message};

fuzz_target!(|data: &[u8]| {
    let scanned = |chunks: &[&[u8]]| {
        let mut scan = ResponseIdScanner::new();
        let mut early = None;
        for chunk in chunks {
            if scan.push(chunk) && early.is_none() {
                early = Some(scan.finish());
            }
        }
        let id = scan.finish();
        if let Some(early) = early {
            assert_eq!(early, id, "the outcome changed after it was known");
        }
        id
    };
    let whole = scanned(&[data]);
    let at = data.len() / 3;
    assert_eq!(scanned(&[&data[..at], &data[at..]]), whole);
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(scanned(&bytes), whole);
    match Message::parse(data) {
        Ok(Message::Request { id, method, .. }) => {
            assert!(!method.is_empty());
            assert_eq!(
                Id::from_raw(id).expect("accepted id is valid").as_json(),
                id.get().trim()
            );
            let text = std::str::from_utf8(data).expect("accepted input is UTF-8");
            assert!(text.contains(id.get()));
            assert_eq!(whole, None, "a request is no response");
        }
        Ok(Message::Response { id, .. }) | Ok(Message::Error { id: Some(id), .. }) => {
            let id = Id::from_raw(id).expect("accepted id is valid");
            // Keys spelled with escapes are not recognised by the scanner.
            let text = std::str::from_utf8(data).expect("accepted input is UTF-8");
            if !text.contains('\\') {
                assert_eq!(whole, Some(id));
            }
        }
        Ok(_) => {}
        Err(e) => {
            let _ = e.code();
        }
    }
});
