//! `#[service]`: RPC stubs from a trait (see `krarup_rpc` for what is generated and why).
//!
//! A procedural macro rather than a `macro_rules!` one: the interface stays an ordinary trait
//! (so editors complete and check it), the generated names are derived from it (`CounterClient`,
//! `CounterServer`), and a malformed procedure gets an error pointing at the offending part.
//!
//! Invariant: the macro never changes what the trait means to its implementors; it only removes
//! its own attributes (`#[cast]`, `#[idempotent]`, `#[stop]`), declares an `async fn` procedure
//! as the `fn .. -> impl Future<Output = T> + Send` it stands for (the `Send` the server stub
//! needs; implementors still write `async fn`), and adds items beside it.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote, ToTokens};
use syn::spanned::Spanned;
use syn::{Attribute, Error, FnArg, Ident, ItemTrait, Pat, Path, ReturnType, TraitItem, TraitItemFn, Type};

/// Generates a client stub and a server stub from a service trait. See `krarup_rpc`.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let result = parse_krate(attr.into()).and_then(|krate| {
        let service: ItemTrait = syn::parse(item)?;
        expand(&krate, service)
    });
    result.unwrap_or_else(Error::into_compile_error).into()
}

/// `krate = path` (default `::krarup::rpc`).
fn parse_krate(attr: TokenStream2) -> syn::Result<Path> {
    if attr.is_empty() {
        return Ok(syn::parse_quote!(::krarup::rpc));
    }
    let meta: syn::MetaNameValue = syn::parse2(attr)?;
    if !meta.path.is_ident("krate") {
        return Err(Error::new(meta.path.span(), "unknown argument: the only one is `krate = path::to::krarup_rpc`"));
    }
    match meta.value {
        syn::Expr::Path(p) => Ok(p.path),
        other => Err(Error::new(other.span(), "expected a path, e.g. `krate = krarup_rpc`")),
    }
}

/// One procedure of the service.
struct Procedure {
    name: Ident,
    variant: Ident,
    args: Vec<(Ident, Type)>,
    ret: Type,
    cast: bool,
    idempotent: bool,
    stop: bool,
    is_async: bool,
    docs: Vec<Attribute>,
}

/// Client methods that a procedure may not be called.
const RESERVED: &[&str] = &["new", "named", "named_at", "with_timeout", "with_retry", "client"];

fn procedure(f: &mut TraitItemFn) -> syn::Result<Procedure> {
    let (mut cast, mut idempotent, mut stop) = (false, false, false);
    f.attrs.retain(|a| {
        let ours = [("cast", &mut cast), ("idempotent", &mut idempotent), ("stop", &mut stop)];
        for (name, flag) in ours {
            if a.path().is_ident(name) {
                *flag = true;
                return false;
            }
        }
        true
    });
    let sig = &f.sig;
    let name = sig.ident.clone();
    if RESERVED.contains(&name.to_string().as_str()) {
        return Err(Error::new(
            name.span(),
            format!("a procedure cannot be called `{name}`: the client stub has a method of that name"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(Error::new(
            sig.generics.span(),
            "a procedure cannot be generic: its arguments cross process and node boundaries as concrete types",
        ));
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_some() => {}
        Some(other) => return Err(Error::new(other.span(), "a procedure takes `&mut self` first: the server's state")),
        None => return Err(Error::new(sig.span(), "a procedure takes `&mut self` first: the server's state")),
    }
    let mut args = Vec::new();
    for input in inputs {
        match input {
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                    args.push((p.ident.clone(), (*typed.ty).clone()));
                }
                other => return Err(Error::new(other.span(), "write each argument as `name: Type`")),
            },
            FnArg::Receiver(r) => return Err(Error::new(r.span(), "`self` comes first, once")),
        }
    }
    let ret = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    if let Some((_, ty)) = args.iter().find(|(_, ty)| borrows(ty)) {
        return Err(Error::new_spanned(
            ty,
            "an argument travels in a message and cannot borrow: take an owned type (`String`, not `&str`)",
        ));
    }
    if borrows(&ret) {
        return Err(Error::new_spanned(
            &ret,
            "a result travels in a message and cannot borrow: return an owned type (`String`, not `&str`)",
        ));
    }
    if cast && !matches!(sig.output, ReturnType::Default) {
        return Err(Error::new(sig.output.span(), "a #[cast] procedure returns nothing: no reply is sent"));
    }
    if cast && idempotent {
        return Err(Error::new(
            sig.span(),
            "#[idempotent] is for calls (they may be retried); a #[cast] is never retried",
        ));
    }
    let variant = format_ident!("{}", camel(&name.to_string()), span = name.span());
    let docs = f.attrs.iter().filter(|a| a.path().is_ident("doc")).cloned().collect();
    let is_async = f.sig.asyncness.take().is_some();
    if is_async {
        // The server stub awaits the procedure inside a process, which may move between threads:
        // its future must be `Send`, which a bare `async fn` in a trait cannot promise (and then
        // `serve` would not compile). Implementors still write `async fn`.
        f.sig.output = syn::parse_quote!(-> impl ::core::future::Future<Output = #ret> + ::core::marker::Send);
        if let Some(body) = &mut f.default {
            *body = syn::parse_quote!({ async move #body });
        }
    }
    Ok(Procedure { name, variant, args, ret, cast, idempotent, stop, is_async, docs })
}

/// Whether `ty` borrows: a reference or a lifetime other than `'static` anywhere in it (`&str`,
/// `Option<&T>`, `Cow<'a, str>`), which the request and reply enums could not hold.
fn borrows(ty: &Type) -> bool {
    use proc_macro2::TokenTree;
    fn any(tokens: TokenStream2) -> bool {
        let mut trees = tokens.into_iter().peekable();
        while let Some(tree) = trees.next() {
            let borrowed = match tree {
                TokenTree::Punct(p) if p.as_char() == '&' => true,
                // A lifetime is a `'` joined to its name.
                TokenTree::Punct(p) if p.as_char() == '\'' => {
                    !matches!(trees.peek(), Some(TokenTree::Ident(name)) if name == "static")
                }
                TokenTree::Group(g) => any(g.stream()),
                _ => false,
            };
            if borrowed {
                return true;
            }
        }
        false
    }
    any(ty.to_token_stream())
}

/// `lookup_all` → `LookupAll`.
fn camel(snake: &str) -> String {
    snake
        .trim_start_matches("r#")
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            cs.next().map(|c| c.to_uppercase().chain(cs).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

fn expand(krate: &Path, mut service: ItemTrait) -> syn::Result<TokenStream2> {
    if !service.generics.params.is_empty() {
        return Err(Error::new(service.generics.span(), "a service trait cannot be generic"));
    }
    let mut procedures = Vec::new();
    let mut errors: Option<Error> = None;
    for item in &mut service.items {
        let result = match item {
            TraitItem::Fn(f) => procedure(f).map(|p| procedures.push(p)),
            other => Err(Error::new(other.span(), "a service trait holds only procedures (`fn` items)")),
        };
        if let Err(e) = result {
            match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            }
        }
    }
    if let Some(e) = errors {
        return Err(e);
    }
    if procedures.is_empty() {
        return Err(Error::new(service.ident.span(), "a service needs at least one procedure"));
    }
    // Each call `name` has a deferred form `start_name` on the client stub.
    for p in &procedures {
        let name = p.name.to_string();
        let started = name.strip_prefix("start_").and_then(|of| procedures.iter().find(|q| !q.cast && q.name == of));
        if let Some(of) = started {
            let of = &of.name;
            return Err(Error::new(
                p.name.span(),
                format!("a procedure cannot be called `{name}`: the client stub uses it for deferred calls of `{of}`"),
            ));
        }
    }

    let vis = &service.vis;
    let trait_name = &service.ident;
    let client = format_ident!("{}Client", trait_name);
    let server = format_ident!("{}Server", trait_name);
    let request = format_ident!("__{}Request", trait_name);
    let reply = format_ident!("__{}Reply", trait_name);
    let serde_path = format!("{}::__private::serde", krate.to_token_stream()).replace(' ', "");

    let request_variants = procedures.iter().map(|p| {
        let (variant, tys) = (&p.variant, p.args.iter().map(|(_, t)| t));
        quote!(#variant(#(#tys),*))
    });
    let calls: Vec<&Procedure> = procedures.iter().filter(|p| !p.cast).collect();
    let casts: Vec<&Procedure> = procedures.iter().filter(|p| p.cast).collect();
    let reply_variants = calls.iter().map(|p| {
        let (variant, ret) = (&p.variant, &p.ret);
        quote!(#variant(#ret))
    });

    let client_methods = procedures.iter().map(|p| {
        let (name, variant, ret, docs) = (&p.name, &p.variant, &p.ret, &p.docs);
        let names: Vec<&Ident> = p.args.iter().map(|(n, _)| n).collect();
        let params = p.args.iter().map(|(n, t)| quote!(#n: #t));
        if p.cast {
            return quote! {
                #(#docs)*
                ///
                /// One-way: returns at once; nothing is awaited (casts and calls from one
                /// process arrive in order).
                #vis fn #name(&self, #(#params),*) {
                    self.inner.cast(#request::#variant(#(#names),*))
                }
            };
        }
        let unpack = format_ident!("__unpack_{}", name);
        let start = format_ident!("start_{}", name);
        let start_params = p.args.iter().map(|(n, t)| quote!(#n: #t));
        let body = if p.idempotent {
            quote! {
                let reply: #reply = self.inner.call_idempotent(move || #request::#variant(#(::core::clone::Clone::clone(&#names)),*)).await?;
            }
        } else {
            quote! {}
        };
        let names2 = names.clone();
        let method = if p.idempotent {
            quote! {
                #vis async fn #name(&self, #(#params),*) -> ::core::result::Result<#ret, #krate::CallError> {
                    #body
                    Self::#unpack(reply)
                }
            }
        } else {
            // Not an `async fn`: the runtime's call under a future written by hand, one level of
            // polling instead of three; as with an `async fn`, nothing happens before it is polled.
            quote! {
                #vis fn #name(&self, #(#params),*) -> impl ::core::future::Future<Output = ::core::result::Result<#ret, #krate::CallError>> + '_ {
                    self.inner.call_map(#request::#variant(#(#names),*), Self::#unpack)
                }
            }
        };
        quote! {
            #(#docs)*
            ///
            /// # Errors
            /// [`CallError`](#krate::CallError) if no reply comes: timeout, no server, lost
            /// connection, the server exited during the call, an undecodable reply.
            #method

            #[doc = concat!("Starts a [`", stringify!(#name), "`](Self::", stringify!(#name), ") call now; await its result later with `wait` (a deferred call).")]
            /// Nothing fails here: every error comes from `wait`.
            #vis fn #start(&self, #(#start_params),*) -> #krate::Deferred<#reply, #ret> {
                self.inner.start(#request::#variant(#(#names2),*), Self::#unpack)
            }

            #[doc(hidden)]
            #[inline]
            fn #unpack(reply: #reply) -> ::core::result::Result<#ret, #krate::CallError> {
                #[allow(unreachable_patterns)]
                match reply {
                    #reply::#variant(value) => ::core::result::Result::Ok(value),
                    _ => ::core::result::Result::Err(#krate::CallError::Undecodable),
                }
            }
        }
    });

    let dot_await = |p: &Procedure| if p.is_async { quote!(.await) } else { quote!() };
    let call_arms = calls.iter().map(|p| {
        let (name, variant) = (&p.name, &p.variant);
        let names: Vec<&Ident> = p.args.iter().map(|(n, _)| n).collect();
        let wait = dot_await(p);
        let stop = if p.stop { quote!(return;) } else { quote!() };
        quote! {
            #request::#variant(#(#names),*) => {
                let value = state.#name(#(#names),*)#wait;
                server.reply(seq, reply_to, #reply::#variant(value));
                #stop
            }
        }
    });
    let cast_arms = casts.iter().map(|p| {
        let (name, variant) = (&p.name, &p.variant);
        let names: Vec<&Ident> = p.args.iter().map(|(n, _)| n).collect();
        let wait = dot_await(p);
        let stop = if p.stop { quote!(return;) } else { quote!() };
        quote! {
            #request::#variant(#(#names),*) => {
                state.#name(#(#names),*)#wait;
                #stop
            }
        }
    });

    let client_doc = format!("The client stub of [`{trait_name}`]: one method per procedure.");
    let server_doc = format!("The server stub of [`{trait_name}`]: serves an implementation as a process.");
    Ok(quote! {
        #service

        #[doc(hidden)]
        #[allow(missing_debug_implementations, non_camel_case_types)]
        #[derive(#krate::__private::serde::Serialize, #krate::__private::serde::Deserialize)]
        #[serde(crate = #serde_path)]
        #vis enum #request { #(#request_variants),* }

        #[doc(hidden)]
        #[allow(missing_debug_implementations, non_camel_case_types)]
        #[derive(Clone, #krate::__private::serde::Serialize, #krate::__private::serde::Deserialize)]
        #[serde(crate = #serde_path)]
        #vis enum #reply { #(#reply_variants),* }

        #[doc = #client_doc]
        #[derive(Clone, Debug)]
        #vis struct #client {
            inner: #krate::Client,
        }

        impl #client {
            /// A client of the server process `pid` (here or on another node).
            #vis fn new(pid: #krate::__private::Pid) -> Self {
                Self { inner: #krate::Client::new(#krate::Target::Pid(pid)) }
            }

            /// A client of the server registered as `name` on this node.
            #vis fn named(name: impl ::core::convert::Into<::std::string::String>) -> Self {
                Self { inner: #krate::Client::new(#krate::Target::Named { name: name.into(), node: ::core::option::Option::None }) }
            }

            /// A client of the server registered as `name` on node `node` (`name@host:port`).
            #vis fn named_at(
                name: impl ::core::convert::Into<::std::string::String>,
                node: impl ::core::convert::Into<::std::string::String>,
            ) -> Self {
                Self { inner: #krate::Client::new(#krate::Target::Named { name: name.into(), node: ::core::option::Option::Some(node.into()) }) }
            }

            /// The same client with another timeout per call.
            #vis fn with_timeout(self, timeout: ::std::time::Duration) -> Self {
                Self { inner: self.inner.with_timeout(timeout) }
            }

            /// The same client, retrying `#[idempotent]` procedures after a lost connection.
            #vis fn with_retry(self, retry: #krate::Retry) -> Self {
                Self { inner: self.inner.with_retry(retry) }
            }

            /// The untyped client underneath.
            #vis fn client(&self) -> &#krate::Client {
                &self.inner
            }

            #(#client_methods)*
        }

        #[doc = #server_doc]
        #[allow(missing_debug_implementations)]
        #vis struct #server;

        impl #server {
            /// Serves `state` until a `#[stop]` procedure has run (or the process is stopped):
            /// spawn this future as a process, register or supervise it like any other.
            #vis async fn serve<S: #trait_name + ::core::marker::Send + 'static>(mut state: S) {
                let mut server = #krate::ServerLoop::<#request, #reply>::new();
                loop {
                    match server.receive().await {
                        #krate::Incoming::Call(seq, body, reply_to) => {
                            #[allow(unreachable_patterns)]
                            match body {
                                #(#call_arms)*
                                // A one-way procedure sent as a call: not answered.
                                _ => {}
                            }
                        }
                        #krate::Incoming::Cast(body) => {
                            #[allow(unreachable_patterns)]
                            match body {
                                #(#cast_arms)*
                                // A call sent as a one-way request: not run (nobody awaits it).
                                _ => {}
                            }
                        }
                        #krate::Incoming::Answered => {}
                    }
                }
            }

            /// Spawns [`serve`](Self::serve) as a process of the calling process's runtime and
            /// returns a client of it.
            #vis fn spawn<S: #trait_name + ::core::marker::Send + 'static>(state: S) -> #client {
                #client::new(#krate::__private::spawn(Self::serve(state)))
            }
        }
    })
}
