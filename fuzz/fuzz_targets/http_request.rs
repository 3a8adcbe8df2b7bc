//! libFuzzer target `http_request`: `perdure_fuzz::http_request::run` (see that module
//! for the input format and the properties checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    perdure_fuzz::http_request::run(data);
});
