//! The setter methods of the configuration builders (here and in `kcp-net`).

/// Generates one by-value setter per named field of the configuration
/// a builder wraps (`self.0`), each documented as setting that field.
///
/// The builder type itself should be `#[must_use]`. Used by [`ConfigBuilder`](crate::ConfigBuilder) and by `kcp-net`'s builders; not
/// part of the API (the configurations are `#[non_exhaustive]`, so struct update
/// syntax is not available outside their crate, and a builder is the way to write
/// one in a single expression).
#[doc(hidden)]
#[macro_export]
macro_rules! builder_setters {
    ($target:ident { $( $field:ident : $ty:ty ),* $(,)? }) => {
        $(
            #[doc = concat!("Sets [`", stringify!($target), "::", stringify!($field), "`].")]
            pub fn $field(mut self, value: $ty) -> Self {
                self.0.$field = value;
                self
            }
        )*
    };
}
