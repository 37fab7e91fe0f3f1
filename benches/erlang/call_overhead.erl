%% What a call's guarantees cost in Erlang/OTP itself: W3a (one client, K sequential round
%% trips to the increment server, each sending the previous reply) done three ways in one run,
%% alternating, so that their ratio can be set beside krarup's stub-to-hand-written ratio.
%%
%%   hand     `Server ! {self(), N}, receive R -> ...`: the anchor's W3a loop
%%   guarded  what `gen_server:call` does around the round trip, written out: a monitor of the
%%            server as the call's reference, the request tagged with it, a selective receive of
%%            the tagged reply or the server's 'DOWN', a 5 s `after`, and a demonitor with flush
%%   gen      `gen_server:call(Server, N, 5000)` to a gen_server doing the increment
%%
%% Run (from the workspace root):
%%   erlc -o target benches/erlang/call_overhead.erl && \
%%     erl -noshell -pa target -eval 'call_overhead:main([1000000, 5])' -s init stop
%%
%% Prints one line per repetition and way, then `RESULT workload=W3a impl=erlang-<way>` lines
%% with the median ns per round trip and the ratio to `hand`.
-module(call_overhead).
-behaviour(gen_server).
-export([main/1, init/1, handle_call/3, handle_cast/2]).

main([K, Reps]) ->
    Ways = [hand, guarded, gen],
    Runs = [{Way, run(Way, K)} || _ <- lists:seq(1, Reps), Way <- Ways],
    [io:format("~p ~.1f ns~n", [W, T]) || {W, T} <- Runs],
    Median = fun(Way) -> median([T || {W, T} <- Runs, W =:= Way]) end,
    Hand = Median(hand),
    [io:format("RESULT workload=W3a impl=erlang-~p k=~p reps=~p ns_per_rt=~.1f ratio_to_hand=~.2f~n",
               [Way, K, Reps, Median(Way), Median(Way) / Hand]) || Way <- Ways],
    ok.

median(Xs) -> lists:nth((length(Xs) + 1) div 2, lists:sort(Xs)).

%% ns per round trip of one repetition, timed inside a fresh client process.
run(Way, K) ->
    Self = self(),
    {Client, Ref} = spawn_monitor(fun() -> Self ! {self(), timed(Way, K)} end),
    receive
        {Client, T} -> erlang:demonitor(Ref, [flush]), T / K;
        {'DOWN', Ref, process, Client, Why} -> erlang:error({bench_crashed, Why})
    end.

timed(gen, K) ->
    {ok, Server} = gen_server:start(?MODULE, [], []),
    T0 = erlang:monotonic_time(nanosecond),
    K = gen_loop(Server, 0, K),
    T1 = erlang:monotonic_time(nanosecond),
    gen_server:stop(Server),
    T1 - T0;
timed(Way, K) ->
    Server = spawn(fun incr_server/0),
    T0 = erlang:monotonic_time(nanosecond),
    K = case Way of
            hand -> hand_loop(Server, 0, K);
            guarded -> guarded_loop(Server, 0, K)
        end,
    T1 = erlang:monotonic_time(nanosecond),
    Server ! stop,
    T1 - T0.

incr_server() ->
    receive
        {From, N} when is_pid(From) -> From ! N + 1, incr_server();
        {From, Tag, N} -> From ! {Tag, N + 1}, incr_server();
        stop -> ok
    end.

hand_loop(_Server, N, 0) -> N;
hand_loop(Server, N, K) ->
    Server ! {self(), N},
    receive R when is_integer(R) -> hand_loop(Server, R, K - 1) end.

guarded_loop(_Server, N, 0) -> N;
guarded_loop(Server, N, K) ->
    Tag = erlang:monitor(process, Server),
    Server ! {self(), Tag, N},
    receive
        {Tag, R} ->
            erlang:demonitor(Tag, [flush]),
            guarded_loop(Server, R, K - 1);
        {'DOWN', Tag, process, Server, Why} ->
            exit(Why)
    after 5000 ->
        erlang:demonitor(Tag, [flush]),
        exit(timeout)
    end.

gen_loop(_Server, N, 0) -> N;
gen_loop(Server, N, K) -> gen_loop(Server, gen_server:call(Server, N, 5000), K - 1).

init([]) -> {ok, nostate}.
handle_call(N, _From, State) -> {reply, N + 1, State}.
handle_cast(_, State) -> {noreply, State}.
