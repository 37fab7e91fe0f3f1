//! The `receive!` macro: Erlang's `receive ... after ... end`.

/// Selective receive with typed patterns, guards and an `after` timeout,
/// like Erlang's `receive ... after ... end`.
///
/// ```text
/// receive! {
///     PATTERN: TYPE [if GUARD] => BODY,
///     PATH => BODY,                 // a unit struct: the path is the pattern and the type
///     ...
///     after DURATION => BODY,      // optional, last
/// }
/// ```
///
/// The mailbox is scanned oldest first; each message is offered to the
/// clauses in order, and the first clause whose type, pattern and guard all
/// accept it takes it out of the mailbox and runs its body. Messages no
/// clause accepts stay in the mailbox, in order, for later receives. If
/// nothing matches, the process waits; with an `after` clause it gives up
/// after that long (a zero duration just looks once) and runs the `after`
/// body. The duration counts from the receive's first look at the mailbox
/// that finds nothing, which is when it starts: the `after` body never runs
/// before it has passed, and typically runs about a millisecond after
/// (timers tick every millisecond). A duration of 2<sup>63</sup> ns (292
/// years) or more, such as `Duration::MAX`, never runs out. The whole
/// `receive!` is an expression whose value is the body that ran; bodies
/// may `return`, `break`, `continue`, use `?` and `.await`.
///
/// Guards see the pattern's bindings by value, like Erlang guards, and
/// must not have side effects: they may run for messages that end up not
/// matching. A guard that touches its process's mailbox — starts another
/// receive, calls `demonitor`, or drops a started call (whose reply it
/// would take out) — panics, crashing the process.
///
/// Types that are not serializable work too (messages sent with
/// [`send_local`](crate::send_local)). A message from another node is
/// decoded when a clause of its type meets it — for a clause type the
/// compiler can see is serializable: in generic code, bound the type
/// parameter by [`Message`](crate::Message).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use krarup_runtime::{receive, self_pid, Pid, Runtime};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Stop;
///
/// let rt = Runtime::new();
/// let replies = rt.block_on(async {
///     let me = self_pid();
///     me.send((me, -1i64));
///     me.send((me, 41i64));
///     me.send(Stop);
///     let mut replies = Vec::new();
///     loop {
///         receive! {
///             (from, n): (Pid, i64) if n >= 0 => replies.push((from == me, n + 1)),
///             Stop => break,
///             after Duration::from_secs(1) => println!("idle"),
///         }
///     }
///     replies
/// });
/// // The negative request was skipped by the guard; Stop was taken after 41.
/// assert_eq!(replies, vec![(true, 42)]);
/// ```
#[macro_export]
macro_rules! receive {
    ($($clauses:tt)*) => {
        $crate::__receive_clause!(@start [] $($clauses)*)
    };
}

/// Internal: parses `receive!` clauses one token at a time.
#[doc(hidden)]
#[macro_export]
macro_rules! __receive_clause {
    // ---- end of input: no `after`
    (@start [$($done:tt)*]) => {
        $crate::__receive_expand!([$($done)*] [])
    };
    // ---- `after` clause (a binding named `after` is `after: T`, tried first)
    (@start [$($done:tt)*] after : $($rest:tt)*) => {
        $crate::__receive_clause!(@pat [$($done)*] [after] : $($rest)*)
    };
    (@start [$($done:tt)*] after $timeout:expr => $body:block $(,)?) => {
        $crate::__receive_expand!([$($done)*] [($timeout) ($body)])
    };
    (@start [$($done:tt)*] after $timeout:expr => $body:expr $(,)?) => {
        $crate::__receive_expand!([$($done)*] [($timeout) ($body)])
    };
    // ---- a clause starts: collect its pattern
    (@start [$($done:tt)*] $($rest:tt)+) => {
        $crate::__receive_clause!(@pat [$($done)*] [] $($rest)+)
    };
    // pattern ends at `:` (the type follows) ...
    (@pat [$($done:tt)*] [$($pat:tt)+] : $($rest:tt)*) => {
        $crate::__receive_clause!(@ty [$($done)*] [$($pat)+] [] $($rest)*)
    };
    // ... or at `=>`: a bare path is both the pattern and the type
    (@pat [$($done:tt)*] [$($pat:tt)+] => $($rest:tt)*) => {
        $crate::__receive_clause!(@body [$($done)*] [$($pat)+] [$($pat)+] [] $($rest)*)
    };
    (@pat [$($done:tt)*] [$($pat:tt)*] $next:tt $($rest:tt)*) => {
        $crate::__receive_clause!(@pat [$($done)*] [$($pat)* $next] $($rest)*)
    };
    // type ends at `if` (a guard follows) or `=>`
    (@ty [$($done:tt)*] [$($pat:tt)+] [$($ty:tt)+] if $guard:expr => $($rest:tt)*) => {
        $crate::__receive_clause!(@body [$($done)*] [$($pat)+] [$($ty)+] [$guard] $($rest)*)
    };
    (@ty [$($done:tt)*] [$($pat:tt)+] [$($ty:tt)+] => $($rest:tt)*) => {
        $crate::__receive_clause!(@body [$($done)*] [$($pat)+] [$($ty)+] [] $($rest)*)
    };
    (@ty [$($done:tt)*] [$($pat:tt)+] [$($ty:tt)*] $next:tt $($rest:tt)*) => {
        $crate::__receive_clause!(@ty [$($done)*] [$($pat)+] [$($ty)* $next] $($rest)*)
    };
    // body: a block (comma optional) or an expression (comma required unless last)
    (@body [$($done:tt)*] $pat:tt $ty:tt $guard:tt $body:block , $($rest:tt)*) => {
        $crate::__receive_clause!(@start [$($done)* ($pat $ty $guard ($body))] $($rest)*)
    };
    (@body [$($done:tt)*] $pat:tt $ty:tt $guard:tt $body:block $($rest:tt)*) => {
        $crate::__receive_clause!(@start [$($done)* ($pat $ty $guard ($body))] $($rest)*)
    };
    (@body [$($done:tt)*] $pat:tt $ty:tt $guard:tt $body:expr , $($rest:tt)*) => {
        $crate::__receive_clause!(@start [$($done)* ($pat $ty $guard ($body))] $($rest)*)
    };
    (@body [$($done:tt)*] $pat:tt $ty:tt $guard:tt $body:expr) => {
        $crate::__receive_clause!(@start [$($done)* ($pat $ty $guard ($body))])
    };
}

/// Internal: expands parsed `receive!` clauses.
#[doc(hidden)]
#[macro_export]
macro_rules! __receive_expand {
    ([$( ([$($pat:tt)+] [$($ty:tt)+] [$($guard:expr)?] ($body:expr)) )*] [$(($timeout:expr) ($after:expr))?]) => {{
        let __expected: &[fn() -> &'static str] = &[$(::core::any::type_name::<$($ty)+>),*];
        let __timeout: ::core::option::Option<::core::time::Duration> = {
            #[allow(unused_mut, unused_assignments)]
            let mut __t = ::core::option::Option::None;
            $( __t = ::core::option::Option::Some($timeout); )?
            __t
        };
        let __matcher = |__env: &mut $crate::__private::Envelope| -> ::core::option::Option<usize> {
            #[allow(unused_imports)]
            use $crate::__private::{Decodes as _, Local as _};
            #[allow(unused_mut, unused_variables)]
            let mut __clause: usize = 0;
            $(
                if !(&&$crate::__private::Probe::<$($ty)+>::new()).decode(__env) {
                    return ::core::option::Option::Some($crate::__private::DISCARD);
                }
                if let ::core::option::Option::Some(__v) = $crate::__private::take::<$($ty)+>(__env) {
                    let mut __hit = false;
                    #[allow(unreachable_code, unused_variables, irrefutable_let_patterns, clippy::all)]
                    match __v {
                        $($pat)+ if { __hit = true $(&& { $guard })?; false } => ::core::unreachable!(),
                        _ => {}
                    }
                    $crate::__private::put(__env, __v);
                    if __hit {
                        return ::core::option::Option::Some(__clause);
                    }
                }
                __clause += 1;
            )*
            ::core::option::Option::None
        };
        match $crate::__private::receive_with(__matcher, __expected, __timeout).await {
            ::core::option::Option::Some((__index, __env)) => {
                #[allow(unused_mut, unused_variables)]
                let mut __clause: usize = 0;
                #[allow(unused_mut)]
                let mut __env = ::core::option::Option::Some(__env);
                $crate::__receive_bodies!(__index __clause __env $( ([$($pat)+] [$($ty)+] [$($guard)?] ($body)) )*)
            }
            ::core::option::Option::None => {
                $crate::__receive_after!($(($after))?)
            }
        }
    }};
}

/// Internal: the chain of `if index == k { body_k }` for `receive!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __receive_bodies {
    ($index:ident $clause:ident $env:ident) => {
        ::core::unreachable!("receive!: no clause with that index")
    };
    ($index:ident $clause:ident $env:ident ([$($pat:tt)+] [$($ty:tt)+] [$($guard:expr)?] ($body:expr)) $($rest:tt)*) => {
        if $index == $clause {
            // The guard already passed while scanning; `true ||` keeps it from
            // running again but counts its bindings as used.
            #[allow(unreachable_patterns, irrefutable_let_patterns, clippy::overly_complex_bool_expr)]
            match $crate::__private::unwrap::<$($ty)+>($env.take().expect("receive!: message taken once")) {
                $($pat)+ if true $(|| { $guard })? => $body,
                _ => ::core::unreachable!("receive!: the clause matched while scanning"),
            }
        } else {
            $clause += 1;
            $crate::__receive_bodies!($index $clause $env $($rest)*)
        }
    };
}

/// Internal: the `after` body, or unreachable if there is none.
#[doc(hidden)]
#[macro_export]
macro_rules! __receive_after {
    () => {
        ::core::unreachable!("receive!: a receive without `after` never times out")
    };
    (($after:expr)) => {
        $after
    };
}
