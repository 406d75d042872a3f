/* ctl.h -- `ri-core ctl`: the control socket's command-line client. */
#ifndef RI_CTL_H
#define RI_CTL_H

/* argv[0] is "ctl". Exit code: 0 the answer was ok, 1 it was not (or the
 * socket could not be used), 2 usage. */
int ri_ctl_main(int argc, char **argv);

#endif
