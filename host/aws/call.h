/* The AWS client API under its older include name; the declarations are in aws/client.h. */
#ifndef ROTATOR_AWS_CALL_H
#define ROTATOR_AWS_CALL_H
#include "aws/client.h"
#endif
