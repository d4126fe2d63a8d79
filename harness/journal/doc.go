// Package journal is the rehearsal's write-ahead journal: every change the
// harness makes to a cluster, or to the machine it runs on, is written down
// with how to undo it before it is made, so that it is always undone. The run
// itself undoes its changes after a failed step, a panic, a timeout or Ctrl-C
// (Journal.Revert); when the run was killed outright, a later `rehearse
// restore` in another process does it (Restore). Revert reads the journal, not
// process memory, so both paths undo exactly the same thing.
//
// # Write-ahead
//
// A step calls Journal.Record and makes its change only once Record has
// returned without error. A crash between the two leaves an entry for a
// change that was never made, which is harmless because undos are idempotent
// (below). The other order would leave, after an unlucky crash, a change
// nobody knows about: the very failure this package exists to prevent.
//
// # Why in the cluster
//
// The journal is a ConfigMap, journal-<run> in namespace rehearse-system,
// not a file and not memory. A SIGKILLed harness keeps no memory; a file
// lives on one machine and goes with a CI runner's workspace; the cluster is
// the one place that every process able to repair the cluster can also read:
// the next run, `rehearse restore` from a laptop, a person with kubectl. Each
// entry is one data key (entry-0001 holds its JSON), so adding or removing
// one is a small update under optimistic concurrency (resourceVersion,
// retried on conflict). Changes to a Node are also marked on the Node
// (annotation journal.rehearse.io/<run> lists the entry numbers), so that
// `kubectl describe node` shows that a rehearsal changed it and which journal
// says how to undo it.
//
// # Liveness: which journals are leftovers
//
// Restore must never undo the changes of a rehearsal that is still running,
// and must not wait for one that is gone. A journal names its owner (host
// name, boot id, pid namespace, pid, process start time) and carries a
// heartbeat the owner refreshes every 5 s until Close. A journal is a
// leftover when
//
//   - its owner closed it with entries still in it;
//   - its owner ran on this machine (same host name, boot id and pid
//     namespace) and that process is gone: the pid does not exist, is a
//     zombie, or now belongs to a process started at another time (pid
//     reuse). This is known at once, without waiting for the heartbeat;
//   - otherwise (another machine, or /proc cannot tell), its heartbeat is
//     older than the stale window (30 s).
//
// On this machine the process table is trusted over the heartbeat: an owner
// whose heartbeat stalled (API server away during a control-plane upgrade, a
// stopped process) is alive and will revert its own changes. Across machines
// the heartbeat is all there is, so their clocks must agree to within the
// stale window less the heartbeat period, and an owner cut off from the API
// server for longer than the window is judged gone. A journal whose owner is
// alive is only taken with Force.
//
// # Idempotent undos
//
// An undo is plain data (Undo: a kind and string parameters), not a closure,
// so that another process, even another build of the harness, can carry it
// out: a Registry maps kinds to functions. Every undo must succeed when there
// is nothing left to undo (already undone, object deleted), because an undo
// may run twice: a process can die after undoing an entry and before
// removing it, and a crash between Record and the change leaves an entry for
// a change never made. Entries are undone newest first, since later changes
// may build on earlier ones, and each is removed from the journal as soon as
// it is undone, so that a process killed half-way through a revert leaves
// exactly what remains to be undone. Failed undos stay in the journal for
// the next attempt. Changes to the machine running the harness (a route to
// pod addresses) carry Undo.Host and are only undone on that machine.
package journal
