//! libFuzzer target `history_decode`: `perdure_fuzz::history::run` (see that module
//! for the input format and the properties checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    perdure_fuzz::history::run(data);
});
