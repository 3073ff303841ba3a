//! The one macro that declares an FFI enum as a variant-for-variant copy of a core enum.
//!
//! The core knows nothing of uniffi, so every fieldless core enum the host sees needs its own
//! `#[derive(uniffi::Enum)]` twin. [`mirror_enum!`] writes the twin and the `From` conversions both
//! ways from one list of variants, so a variant added to the core and not here fails to compile
//! instead of being dropped. Each domain module declares the enums its records use.

/// Declares an FFI enum that mirrors a core enum variant for variant, with `From` both ways.
macro_rules! mirror_enum {
    (
        $(#[$meta:meta])*
        $name:ident = $core:path {
            $($(#[$vmeta:meta])* $variant:ident),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl From<$core> for $name {
            fn from(v: $core) -> Self {
                type C = $core;
                match v {
                    $(C::$variant => $name::$variant),+
                }
            }
        }

        impl From<$name> for $core {
            fn from(v: $name) -> Self {
                type C = $core;
                match v {
                    $($name::$variant => C::$variant),+
                }
            }
        }
    };
}

pub(crate) use mirror_enum;
