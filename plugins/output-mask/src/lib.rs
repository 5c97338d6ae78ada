pub mod masker;
pub mod patterns;
