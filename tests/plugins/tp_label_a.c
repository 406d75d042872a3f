/* tp_label_a -- see tp_label.h */
#define TP_LABEL "a"
#include "tp_label.h"
