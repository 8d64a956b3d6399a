"""The organisers' DIN (challenge task 1 fixes it; see README, "The seed DIN").

Per row: likes_level and views_level are embedded; the target item and each of the last
max_len history items are represented by their item-side features from item_info (item_id,
item_tags, item_emb_d128 with the seed config: 64 + 64 + 128 = 256 dims); DIN target
attention pools the history (padded positions weigh 0); [other features, target, pooled]
go through the DNN. Embedding, attention and MLP layers are FuxiCTR's own classes, so the
parameters and arithmetic are the seed's.

Two differences in how, not what (tests/test_seed_design.py checks the outputs match):
- the seed embedded all batch_size * (max_len + 1) item slots; we embed each distinct item of
  the batch once and gather. Every item-side layer acts on one item at a time, so the result
  is the same, for a fraction of the work (histories are mostly padding, popular items repeat);
- the seed ran the attention MLP on every history position and then multiplied padded
  positions' weights by 0; we run it on real positions only and sum their weighted vectors.
  Only with din_use_softmax (weights normalised over positions) do we use the dense layer.
"""
import torch
from fuxictr.pytorch.layers import DIN_Attention, Dice, FeatureEmbedding, MLP_Block

from .base import MMCTRModel
from .layers import with_float32_output
from ..data.loader import HISTORY, TARGET
from ..data.features import item_features
from ..data.item_table import ItemTable


class DIN(MMCTRModel):
    def __init__(self,
                 feature_map,
                 model_id="DIN",
                 gpu=-1,
                 dnn_hidden_units=(512, 128, 64),
                 dnn_activations="ReLU",
                 attention_hidden_units=(64,),
                 attention_hidden_activations="Dice",
                 attention_output_activation=None,
                 attention_dropout=0,
                 learning_rate=1e-3,
                 embedding_dim=10,
                 net_dropout=0,
                 batch_norm=False,
                 din_use_softmax=False,
                 embedding_regularizer=None,
                 net_regularizer=None,
                 item_info=None,
                 item_table=None,
                 max_len=64,
                 **kwargs):
        super().__init__(feature_map, model_id=model_id, gpu=gpu,
                         embedding_regularizer=embedding_regularizer,
                         net_regularizer=net_regularizer, **kwargs)
        if isinstance(dnn_activations, str) and dnn_activations.lower() == "dice":
            dnn_activations = [Dice(units) for units in dnn_hidden_units]
        self.max_len = int(max_len)
        self.item_feature_names = item_features(feature_map)
        self.item_info_dim = sum(feature_map.features[name].get("embedding_dim", embedding_dim)
                                 for name in self.item_feature_names)
        # The table is data, not weights: built from item_info unless the caller passes one.
        self.item_table = item_table or ItemTable.from_parquet(item_info, feature_map)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        self.attention_layers = DIN_Attention(self.item_info_dim,
                                              attention_units=list(attention_hidden_units),
                                              hidden_activations=attention_hidden_activations,
                                              output_activation=attention_output_activation,
                                              dropout_rate=attention_dropout,
                                              use_softmax=din_use_softmax)
        # the logit comes out in float32; the base model applies the sigmoid (see layers.py)
        self.dnn = with_float32_output(MLP_Block(
            input_dim=feature_map.sum_emb_out_dim() + self.item_info_dim, output_dim=1,
            hidden_units=list(dnn_hidden_units), hidden_activations=dnn_activations,
            output_activation=None, dropout_rates=net_dropout, batch_norm=batch_norm))
        self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
        self.reset_parameters()
        self.model_to_device()
        self.compile_blocks(self.attention_layers.attention_layer, self.dnn)

    def get_inputs(self, inputs, feature_source=None):
        """Non-item, non-meta features on the model's device."""
        return {name: inputs[name].to(self.device) for name, spec in self.feature_map.features.items()
                if spec["type"] != "meta" and spec.get("source") != "item" and name in inputs}

    def distinct_items(self, item_ids):
        """(distinct ids among item_ids, slot_of: a table-sized map from id to its row among
        them). A scatter into a marker the size of the item table instead of torch.unique's
        sort: linear time, on any device."""
        num_items, device = self.item_table.num_items, item_ids.device
        seen = torch.zeros(num_items, dtype=torch.bool, device=device)
        seen[item_ids] = True
        distinct = seen.nonzero().reshape(-1)
        slot_of = torch.zeros(num_items, dtype=torch.long, device=device)
        slot_of[distinct] = torch.arange(len(distinct), device=device)
        return distinct, slot_of

    def item_embedder(self, item_ids):
        """A function giving the item vectors of ids drawn from item_ids (any shape); each
        distinct item is embedded once."""
        distinct, slot_of = self.distinct_items(item_ids.reshape(-1))
        distinct_emb = self.embedding_layer(self.item_table.lookup(distinct), flatten_emb=True)
        return lambda ids: distinct_emb[slot_of[ids]]

    def embed_items(self, item_ids):
        """Item vectors (..., item_info_dim) for a LongTensor of item ids of any shape."""
        return self.item_embedder(item_ids)(item_ids)

    def prepare_items(self, inputs):
        """The item-side inputs of a batch, on the model's device: the features of its
        distinct items (target and real history items), the row among them of each target
        and of each real (non-padded) history position, and the batch row of each position."""
        history = inputs[HISTORY][:, -self.max_len:].to(self.device)
        target = inputs[TARGET].to(self.device).long()
        # real positions as flat indexes (padding, id 0, is left out here); flat index_select
        # is several times cheaper on the CPU than 2-D advanced indexing
        positions = (history > 0).reshape(-1).nonzero().reshape(-1)
        rows = positions // history.shape[1]
        history_ids = history.reshape(-1).index_select(0, positions).long()
        distinct, slot_of = self.distinct_items(torch.cat([history_ids, target]))
        return {"items": self.item_table.lookup(distinct),
                "target_slot": slot_of.index_select(0, target),
                "history_slot": slot_of.index_select(0, history_ids), "history_row": rows}

    def attend(self, target_emb, history_row, history_emb):
        """DIN attention pooling over real history positions: each position's weight comes
        from the attention MLP over [target, item, target - item, target * item]; the
        weighted items are summed per batch row (rows with no history pool to 0)."""
        target_rows = target_emb[history_row]
        attention_input = torch.cat([target_rows, history_emb, target_rows - history_emb,
                                     target_rows * history_emb], dim=-1)
        weights = self.attention_layers.attention_layer(attention_input)
        return torch.zeros_like(target_emb).index_add(0, history_row, weights * history_emb)

    def pooled_and_target(self, inputs):
        if self.attention_layers.use_softmax:  # weights normalised over all 64 positions
            history = inputs[HISTORY][:, -self.max_len:].to(self.device).long()
            target = inputs[TARGET].to(self.device).long()
            item_vectors = self.item_embedder(torch.cat([history.reshape(-1), target]))
            target_emb = item_vectors(target)
            pooled = self.attention_layers(target_emb, item_vectors(history),
                                           (history > 0).float())
            return pooled, target_emb
        batch = self.prepare_items(inputs)
        item_emb = self.embedding_layer(batch["items"], flatten_emb=True)
        target_emb = item_emb[batch["target_slot"]]
        pooled = self.attend(target_emb, batch["history_row"], item_emb[batch["history_slot"]])
        return pooled, target_emb

    def forward(self, inputs):
        pooled_emb, target_emb = self.pooled_and_target(inputs)
        emb_list = [target_emb, pooled_emb]
        other_features = self.get_inputs(inputs)
        if other_features:
            emb_list.insert(0, self.embedding_layer(other_features, flatten_emb=True))
        return {"logit": self.dnn(torch.cat(emb_list, dim=-1))}
