/* dispatch.h — answers every control command with exactly one ACK or ERROR. */
#ifndef HS_DISPATCH_H
#define HS_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

/* one complete control frame (payload excludes the header) */
void hs_dispatch(uint32_t code, const unsigned char *payload, size_t len);
/* a frame whose length field is below the header size or above the maximum */
void hs_dispatch_bad_length(uint32_t code, uint32_t len);

#endif
