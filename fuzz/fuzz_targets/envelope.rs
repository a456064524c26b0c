//! The envelope parser: never panics; what it accepts keeps its id's exact
//! spelling and is one of the four shapes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpod_core::{Id, Message};

fuzz_target!(|data: &[u8]| {
    match Message::parse(data) {
        Ok(Message::Request { id, method, .. }) => {
            assert!(!method.is_empty());
            assert_eq!(
                Id::from_raw(id).expect("accepted id is valid").as_json(),
                id.get().trim()
            );
            let text = std::str::from_utf8(data).expect("accepted input is UTF-8");
            assert!(text.contains(id.get()));
        }
        Ok(Message::Response { id, .. }) => {
            assert!(Id::from_raw(id).is_ok());
        }
        Ok(Message::Error { id: Some(id), .. }) => assert!(Id::from_raw(id).is_ok()),
        Ok(_) => {}
        Err(e) => {
            let _ = e.code();
        }
    }
});
