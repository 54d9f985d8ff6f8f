/* walctl_main.c — bin/walctl: offline verify/dump of a WAL directory (see wal_tool.c). */
#include "wal/wal.h"

int main(int argc, char **argv)
{
	return wal_tool_main(argc, argv);
}
