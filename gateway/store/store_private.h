/*
 * store_private.h - what the store's own modules (export.c) share with
 * store.c. Not for use outside gateway/store/.
 *
 * store_db_acquire() takes the connection lock: the writer thread cannot
 * commit a batch until store_db_release(), so hold it only for a read.
 */
#ifndef BFR_STORE_PRIVATE_H
#define BFR_STORE_PRIVATE_H

#include <sqlite3.h>

#include "store.h"

sqlite3 *store_db_acquire(struct store *store);
void store_db_release(struct store *store);

#endif
