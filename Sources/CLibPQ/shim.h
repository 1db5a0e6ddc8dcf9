#ifndef STYLIST_CLIBPQ_SHIM_H
#define STYLIST_CLIBPQ_SHIM_H
/* Debian installs libpq's headers under /usr/include/postgresql, outside the default search path;
   other platforms put them on it. The quoted includes inside libpq-fe.h resolve next to it either way. */
#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

/* PG_DIAG_* are character-literal macros, which Swift does not import. */
static inline int stylist_pq_diag_sqlstate(void) { return PG_DIAG_SQLSTATE; }
static inline int stylist_pq_diag_message_primary(void) { return PG_DIAG_MESSAGE_PRIMARY; }
static inline int stylist_pq_diag_message_detail(void) { return PG_DIAG_MESSAGE_DETAIL; }
static inline int stylist_pq_diag_constraint_name(void) { return PG_DIAG_CONSTRAINT_NAME; }
#endif
