/* crashpoint.h — named points where a test may cut the power of this process (issue 21).
 *
 * The durability code calls crash_point("name") at the moments a power loss would hurt most:
 * between the steps of a checkpoint, of a WAL segment switch, of a compaction and of a snapshot
 * install. In production nothing is set and a call is one load and one branch. A test sets, in
 * kvd's environment:
 *
 *   RINGRAFT_TEST_CRASH_AT=NAME[:N]  the Nth time (default the first) NAME is reached, the
 *                                    process cuts its power: it writes RINGRAFT_TEST_CRASH_CMD
 *                                    (e.g. "cut 500 7") into the file RINGRAFT_TEST_CRASH_CTL
 *                                    (the control file of the power-cut layer under its data
 *                                    directory, tests/powercut/powercutfs.c), then SIGKILLs
 *                                    itself. Without CRASH_CTL it only SIGKILLs (a process
 *                                    crash, nothing lost below it).
 *   RINGRAFT_TEST_CRASH_WRITEBACK=1  first syncfs(2) the layer: the kernel's dirty pages reach
 *                                    it (unsynced), so the cut decides which survive.
 *   RINGRAFT_TEST_CRASH_ARM_FILE=F   hits are counted only once the file F exists (the test
 *                                    creates it when its load is running).
 *
 * The names in use are listed in docs/DURABILITY.md ("Crash points"). It lives in wal/ because
 * wal/ is the bottom of the library stack: kv/ and node/ call it too.
 */
#ifndef RINGRAFT_WAL_CRASHPOINT_H
#define RINGRAFT_WAL_CRASHPOINT_H

#include <stdbool.h>

/* Whether any crash point is armed (the environment is read once, at the first call). */
bool crash_point_armed(void);

/* Reached the point NAME: if it is the armed one and this is the armed hit, the process loses
 * its power here and does not return. */
void crash_point(const char *name);

#endif
