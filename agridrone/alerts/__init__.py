"""Farmer alerts: policy (what deserves an alert), a durable outbox, and sinks (STATUSTEXT, MQTT).

How the flight loop wires them (pipeline.py owns this; every piece works and is tested alone)::

    fm = FieldMap.for_field(frame, boundary_latlon, cell_m=1.0)                   # agridrone.fieldmap
    policy = AlertPolicy(flight_id, AlertPolicyConfig.from_mapping(mission_alerts),
                         field_boundary_latlon=boundary_latlon)
    folder = FlightFolder.create(flights_root, flight_id, meta={...})           # agridrone.flightlog
    sinks = [StatusTextSink(link.send_statustext)]
    if mqtt_url:
        sinks.append(MqttSink(parse_mqtt_url(mqtt_url), farm=..., field=..., drone=...).start())
    outbox = Outbox(folder.outbox_path, sinks)
    outbox.start()                                   # delivery thread: pump() every 0.1 s

    # every frame / every few frames, on the loop's thread:
    fm.add(GroundHealthObservation(...))             # per health tile projected to the ground
    for alert in (policy.on_zones(fm.zones(now_ns), now_ns) + policy.on_obstacles(obstacles, now_ns)
                  + policy.on_correction(correction, now_ns, lat, lon, obstacles_by_id)
                  + policy.on_link(link_ok, now_ns, lat, lon) + policy.on_camera(camera_ok, now_ns, lat, lon)):
        folder.add_alert(outbox, alert)              # thumbnail file + commit, never blocks on the network

    # end of survey:
    for alert in policy.on_zones(fm.zones(now_ns), now_ns, final=True) + policy.tick(now_ns):
        folder.add_alert(outbox, alert)
    folder.write_health_map(fm.to_geojson()); outbox.close(); folder.export_alerts(); folder.close()

Submodules are imported on demand; ``paho-mqtt`` is needed only by ``mqtt`` and ``subscriber``.
"""
