#ifndef RI_VERSION_H
#define RI_VERSION_H
#define RI_VERSION "0.1.0"
#endif
