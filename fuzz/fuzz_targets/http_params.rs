//! libFuzzer target `http_params`: `perdure_fuzz::http::run` (see that module
//! for the input format and the properties checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    perdure_fuzz::http::run(data);
});
