/* The cluster-wide settings in force: the `config` key when the view has
 * one, else the file's bootstrap.dcs (Patroni's rule). Pure. */
#pragma once

#include "config.h"
#include "dcs.h"

static inline const ConfigDcs *settings_dcs(const Config *c, const DcsCluster *view)
{
    return view && view->config ? &view->config->dcs : &c->bootstrap.dcs;
}
