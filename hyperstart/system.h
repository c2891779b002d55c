/* system.h — guest-wide duties of PID 1: base mounts, CPU/memory hotplug, power off. */
#ifndef HS_SYSTEM_H
#define HS_SYSTEM_H

struct hs_err;

/* mounts /proc /sys /dev (+pts, shm), opens the console on fds 0-2, brings lo up */
void hs_system_init(void);
int hs_online_cpu_mem(struct hs_err *err);
/* flushes the control port, kills everything, syncs, unmounts, powers off */
void __attribute__((noreturn)) hs_poweroff(void);

#endif
