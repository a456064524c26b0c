//! The framer: any bytes, any chunking → the same frames, each within the
//! limit, none containing a newline.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpod_core::Framer;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let max = 1 + (split as usize % 64);
    let decode = |chunks: &[&[u8]]| {
        let mut framer = Framer::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            framer.decode(chunk, |f| {
                if let Ok(frame) = f {
                    assert!(frame.len() <= max);
                    assert!(!frame.contains(&b'\n'));
                }
                out.push(f.map(<[u8]>::to_vec));
            });
            assert!(framer.buffered() <= max + 1);
        }
        out
    };
    let whole = decode(&[rest]);
    let at = (split as usize * 7) % (rest.len() + 1);
    let (a, b) = rest.split_at(at);
    assert_eq!(decode(&[a, b]), whole);
    let bytes: Vec<&[u8]> = rest.chunks(1).collect();
    assert_eq!(decode(&bytes), whole);
});
