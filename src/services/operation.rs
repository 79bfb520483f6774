//! A service operation as an action: typed request and response, schemas
//! derived from the types (so the contract and the code cannot drift), and the
//! `service!` macro that declares a service once.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value as Json;

use super::{ActionError, Ctx, ServiceFuture};
use crate::actions::{Action, ActionFuture, ActionSpec, Call, Effect};

/// An operation bound to a backend, ready for the registry.
pub(crate) struct Operation {
    pub spec: ActionSpec,
    pub action: Arc<dyn Action>,
}

impl Operation {
    pub(crate) fn new<Req, Resp>(
        name: &str,
        description: &str,
        effect: Effect,
        errors: &[&str],
        call: impl Fn(Ctx, Req) -> ServiceFuture<Resp> + Send + Sync + 'static,
    ) -> Operation
    where
        Req: DeserializeOwned + schemars::JsonSchema + 'static,
        Resp: Serialize + schemars::JsonSchema + 'static,
    {
        let spec = spec::<Req, Resp>(name, description, effect, errors);
        Operation { spec, action: Arc::new(Bound { call, types: PhantomData::<fn(Req) -> Resp> }) }
    }
}

/// The spec of an action whose input and output are these types.
pub(crate) fn spec<Req: schemars::JsonSchema, Resp: schemars::JsonSchema>(
    name: &str,
    description: &str,
    effect: Effect,
    errors: &[&str],
) -> ActionSpec {
    ActionSpec {
        name: name.to_owned(),
        description: description.trim().to_owned(),
        effect,
        input_schema: schema_of::<Req>(),
        output_schema: schema_of::<Resp>(),
        errors: errors.iter().map(|e| (*e).to_owned()).collect(),
    }
}

/// The JSON Schema (2020-12) of a type, every subschema inline (the validator
/// reads output properties without following `$ref`).
pub(crate) fn schema_of<T: schemars::JsonSchema>() -> Json {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true);
    let mut schema = settings.into_generator().into_root_schema_for::<T>().to_value();
    if let Some(map) = schema.as_object_mut() {
        map.remove("$schema");
        map.remove("title");
    }
    schema
}

/// An undo: the effect of an operation that the named action takes back.
pub(crate) fn undone_by(action: &str) -> Effect {
    Effect::Reversible { undo: action.to_owned() }
}

struct Bound<F, T> {
    call: F,
    types: PhantomData<T>,
}

impl<Req, Resp, F> Action for Bound<F, fn(Req) -> Resp>
where
    Req: DeserializeOwned + 'static,
    Resp: Serialize + 'static,
    F: Fn(Ctx, Req) -> ServiceFuture<Resp> + Send + Sync,
{
    fn call(&self, call: Call) -> ActionFuture {
        let _ = &self.types;
        let request = match serde_json::from_value::<Req>(call.input) {
            Ok(request) => request,
            Err(e) => {
                let e = ActionError::new("invalid_input", format!("the input does not fit the action: {e}"));
                return super::ready(Err(e));
            }
        };
        let response = (self.call)(call.ctx, request);
        Box::pin(async move {
            let response = response.await?;
            serde_json::to_value(response)
                .map_err(|e| ActionError::new("failed", format!("the response cannot be written as JSON: {e}")))
        })
    }
}

/// Declares a service: its trait, its HTTP client, and its operations as actions.
///
/// ```ignore
/// service! {
///     /// Stock of products.
///     trait Inventory, fn operations, service "inventory" {
///         /// Reserves stock of one product.
///         reserve(Reserve) -> Reservation, undone_by("inventory.release"), ["out_of_stock"];
///     }
/// }
/// ```
#[macro_export]
macro_rules! service {
    (
        $(#[doc = $doc:literal])*
        trait $Trait:ident, fn $ops:ident, service $service:literal {
            $(
                #[doc = $opdoc:literal]
                $op:ident($Req:ty) -> $Resp:ty, $effect:expr, [$($code:literal),* $(,)?];
            )*
        }
    ) => {
        $(#[doc = $doc])*
        pub(crate) trait $Trait: Send + Sync {
            $(
                #[doc = $opdoc]
                fn $op(&self, ctx: $crate::services::Ctx, request: $Req) -> $crate::services::ServiceFuture<$Resp>;
            )*
        }

        impl $Trait for $crate::services::remote::Remote {
            $(
                fn $op(&self, ctx: $crate::services::Ctx, request: $Req) -> $crate::services::ServiceFuture<$Resp> {
                    self.call(stringify!($op), ctx, request)
                }
            )*
        }

        /// Every operation of this service, bound to `backend`.
        pub(crate) fn $ops(backend: &std::sync::Arc<dyn $Trait>) -> Vec<$crate::services::Operation> {
            vec![$(
                {
                    let backend = backend.clone();
                    $crate::services::Operation::new::<$Req, $Resp>(
                        concat!($service, ".", stringify!($op)),
                        $opdoc,
                        $effect,
                        &[$($code),*],
                        move |ctx, request| backend.$op(ctx, request),
                    )
                }
            ),*]
        }
    };
}
