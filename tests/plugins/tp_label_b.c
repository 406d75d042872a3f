/* tp_label_b -- see tp_label.h */
#define TP_LABEL "b"
#include "tp_label.h"
