//! The setter methods of the configuration builders (here and in `kcp-net`).

/// Generates one by-value setter per named field of the configuration a builder
/// wraps (`self.0`), each documented as setting that field; a field may carry
/// attributes such as `#[cfg(feature = "...")]`, applied to its setter.
///
/// The list must name every field of the type: the macro also generates (in test
/// builds of the crate that defines the type) an exhaustive pattern of the listed
/// fields, so a field added to the type without a setter fails to compile.
///
/// The builder type itself should be `#[must_use]`. Used by
/// [`ConfigBuilder`](crate::ConfigBuilder) and by `kcp-net`'s builders; not part of
/// the API (the configurations are `#[non_exhaustive]`, so struct update syntax is
/// not available outside their crate, and a builder is the way to write one in a
/// single expression).
#[doc(hidden)]
#[macro_export]
macro_rules! builder_setters {
    ($target:ident { $( $(#[$attr:meta])* $field:ident : $ty:ty ),* $(,)? }) => {
        $(
            $(#[$attr])*
            #[doc = concat!("Sets [`", stringify!($target), "::", stringify!($field), "`].")]
            pub fn $field(mut self, value: $ty) -> Self {
                self.0.$field = value;
                self
            }
        )*

        /// Fails to compile when the type has a field the list above lacks.
        #[cfg(test)]
        #[allow(dead_code)]
        fn every_field_has_a_setter(config: $target) {
            let $target { $( $(#[$attr])* $field: _, )* } = config;
        }
    };
}
